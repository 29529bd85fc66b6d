"""A run config's model, optimizer and initial state: built here and nowhere else."""
from __future__ import annotations

import jax
import numpy as np
import optax

from sem_jax.core import keys as K, train
from sem_jax.core.nets.models import create_model
from sem_jax.run import sharding


def optimizer(cfg) -> optax.GradientTransformation:
  """The config's optimizer: SGD (learning_rate, momentum) or Adam (learning_rate), with
  weight_decay and the step-decayed rate (lr_decay_every, lr_decay_factor)."""
  if getattr(cfg, "optimizer", "sgd") == "adam":
    return train.adam(cfg.learning_rate, cfg.weight_decay, cfg.lr_decay_every,
                      cfg.lr_decay_factor)
  return train.paper_sgd(cfg.learning_rate, cfg.momentum, cfg.weight_decay, cfg.lr_decay_every,
                   cfg.lr_decay_factor)


def model(cfg, num_classes: int):
  """The config's network (model, model_width, dtype, model_init) for ``num_classes``."""
  return create_model(cfg.model, num_classes, cfg.model_width, cfg.dtype, cfg.model_init)


def root_key_data(seed: int) -> np.ndarray:
  """The run's root key as uint32 key data (replicable across processes, checkpointed)."""
  return np.asarray(jax.random.key_data(K.root_key(seed)))


def model_and_state(cfg, num_classes: int, image_shape, mesh, abstract: bool = False):
  """(model, optimizer, initial TrainState replicated over ``mesh``), initialised from the
  config's seed (stream INIT) in one jitted program (bit-identical to the eager init, and one
  compilation the persistent cache keeps instead of one per operation). ``abstract``: shapes
  and shardings only (a restore target)."""
  net, tx = model(cfg, num_classes), optimizer(cfg)
  init = jax.jit(lambda: train.init_state(net, tx, K.stream(K.root_key(cfg.seed), K.INIT),
                                          tuple(image_shape)))
  rep = sharding.replicated(mesh)
  if abstract:
    state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep),
                         jax.eval_shape(init))
  else:
    state = jax.device_put(init(), rep)
  return net, tx, state


def fit_batch(cfg, n_images: int, mesh, log, whose: str = ""):
  """``cfg`` with its batch fitted to a training set of ``n_images`` ([`sharding.fit_batch`][sharding.fit_batch]),
  said once in the log (process 0) so the run records the batch it trained on; ``whose`` names
  the images in that line (e.g. " the victim trains on")."""
  batch = sharding.fit_batch(cfg.batch_size, n_images, mesh)
  if batch == cfg.batch_size:
    return cfg
  if jax.process_index() == 0:
    log(f"batch_size {cfg.batch_size} exceeds the {n_images} training images{whose}: training "
        f"on batches of {batch}")
  return cfg.replace(batch_size=batch).validate()
