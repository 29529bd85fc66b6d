"""A finished ``evaluate`` run's model, as a saved artifact: TAP attacks it.

The final checkpoint of an evaluate run is the victim; ``results.json`` (written last)
names it. This module reads it back for any user (TAP generation, notebooks) without
importing the evaluation loop.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from sem_jax import artifacts, fs, keys as K, sharding, train
from sem_jax.checkpoint import INTEGRITY_FILE, Checkpoints
from sem_jax.config import EvalConfig, from_dict
from sem_jax.errors import SemJaxError
from sem_jax.loop import CHECKPOINT_DIR
from sem_jax.models import create_model

RESULTS_FILE = "results.json"


def read_results(workdir: str) -> dict:
  """results.json of a finished evaluate run (one-line error when there is none)."""
  rpath = os.path.join(workdir, RESULTS_FILE)
  if not fs.exists(rpath):
    raise SemJaxError(f"{workdir} holds no finished evaluate run ({RESULTS_FILE} missing)")
  return artifacts.read_json(rpath)


def load_victim(workdir: str, devices=None):
  """(model, TrainState, EvalConfig, results) of a finished evaluate run (e.g. for TAP).

  The state is restored from the final checkpoint (integrity-checked) and replicated.
  """
  results = read_results(workdir)
  cfg = from_dict(results["config"], EvalConfig)
  model = create_model(cfg.model, results["dataset"]["num_classes"], cfg.model_width, cfg.dtype,
                       cfg.model_init)
  tx = train.make_optimizer(cfg)
  rep = sharding.replicated(sharding.make_mesh(devices))
  state = jax.eval_shape(lambda: train.init_state(model, tx, K.stream(K.root_key(cfg.seed), K.INIT),
                                                  tuple(results["dataset"]["image_shape"])))
  root = np.asarray(jax.random.key_data(K.root_key(cfg.seed)))
  abstract = {"train": jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep),
                                    state), "root": root}
  ckpts = Checkpoints(os.path.join(workdir, CHECKPOINT_DIR), cfg.max_checkpoints)
  try:
    found = ckpts.restore_latest(abstract, results["fingerprint"], lambda *_: None)
  finally:
    ckpts.close()
  if found is None or int(found[0]["train"].step) != cfg.train_steps:
    raise SemJaxError(f"{workdir} has no intact final model checkpoint (step {cfg.train_steps})")
  return model, found[0]["train"], cfg, results


def model_digest(workdir: str) -> str:
  """SHA-256 of the final checkpoint's integrity record: identifies the saved model."""
  results = read_results(workdir)
  path = os.path.join(workdir, results["model_checkpoint"], INTEGRITY_FILE)
  if not fs.exists(path):
    raise SemJaxError(f"{workdir}: the final model checkpoint is missing ({path})")
  return artifacts.sha256_file(path)
