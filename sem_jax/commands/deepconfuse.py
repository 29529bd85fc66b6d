"""``generate --config.method=dc`` and ``gue``: a noise generator trained against a
classifier, DeepConfuse's alternating steps ([`sem_jax.core.poisons.deepconfuse`][sem_jax.core.poisons.deepconfuse]) or GUE's
Stackelberg game ([`sem_jax.core.poisons.gue`][sem_jax.core.poisons.gue]), checkpointed and resumable like any outer loop,
then one pass writing ρu g(x) for every training index.

The classifier is the config's model with its SGD (dc: ``learning_rate`` also sets the
look-ahead step); the generator trains at ``dc_generator_lr``, with Adam (dc) or SGD (gue, as
the release); with ``dc_reset_every`` the classifier restarts from a fresh seeded init every
so many steps.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sem_jax.core.poisons import deepconfuse as DC, gue as GUE

from sem_jax.core import keys as K, train

from sem_jax.core.crafting import noise as N
from sem_jax.core.units import normalize, whole_levels
from sem_jax.data.dataset import Dataset
from sem_jax.data.order import batch_indices, padded_batches
from sem_jax.errors import SemJaxError
from sem_jax.run import build, loop, sharding
from sem_jax.run.config import GenerateConfig
from sem_jax.run.runtime import loops_unrolled

GENERATOR = 9   # the generator's init stream


def check(cfg: GenerateConfig, ds: Dataset, mesh, log) -> GenerateConfig:
  """``cfg`` fitted to the dataset: the image sides must be multiples of 2^3 (the generator's
  stride-2 stages); the batch shrinks to a small training set."""
  h, w, _ = ds.image_shape
  if h % 2 ** DC.DEPTH or w % 2 ** DC.DEPTH:
    raise SemJaxError(f"dc's generator needs image sides that are multiples of {2 ** DC.DEPTH}, "
                      f"got {h}x{w}; set image_size")
  return build.fit_batch(cfg, len(ds.fit_indices), mesh, log)


def _parts(cfg: GenerateConfig, ds: Dataset, mesh):
  """(classifier model, its SGD, generator, Adam, spec, initial replicated DCState)."""
  model, tx, cls = build.model_and_state(cfg, ds.num_classes, ds.image_shape, mesh)
  gen = (GUE.generator if cfg.method == "gue" else DC.NoiseGenerator)(ds.image_shape[-1])
  gen_tx = (optax.sgd if cfg.method == "gue" else optax.adam)(cfg.dc_generator_lr)
  gen_params = gen.init(K.stream(K.root_key(cfg.seed), GENERATOR),
                        jnp.zeros((1, *ds.image_shape), jnp.float32))["params"]
  spec = DC.DCSpec(cfg.noise_radius, cfg.learning_rate,
                   cfg.augment_pad if cfg.augment else -1, cfg.crop_size)
  state = sharding.put_replicated(mesh, DC.DCState(cls, gen_params, gen_tx.init(gen_params)))
  return model, tx, gen, gen_tx, spec, state


def _fresh_classifier(cfg, ds, mesh, step: int):
  """The classifier restarted at ``step``: seeded by (seed, step), replicated."""
  _, _, cls = build.model_and_state(cfg.replace(seed=cfg.seed + 7919 * step), ds.num_classes,
                                    ds.image_shape, mesh)
  return cls


def run(run_: loop.Run, cfg: GenerateConfig, ds: Dataset, mesh):
  """Train, then write the noise of every index; returns (int8 table, manifest fields), or
  None when it stopped early (checkpoint saved)."""
  model, tx, gen, gen_tx, spec, state = _parts(cfg, ds, mesh)
  root_data = build.root_key_data(cfg.seed)
  found = run_.restore({"dc": state, "root": root_data})
  start = 0
  if found is not None:
    tree, start = found
    if not np.array_equal(np.asarray(tree["root"]), root_data):
      raise SemJaxError(f"checkpoint step {start} was written with another seed")
    state = tree["dc"]
  rep = sharding.replicated(mesh)
  if cfg.method == "gue":
    gspec = GUE.GUESpec(cfg.noise_radius, cfg.gue_eta, cfg.gue_inner_steps, cfg.gue_inner_lr,
                        loops_unrolled(cfg.unroll_loops))
    one = lambda st, root, b: GUE.step(model, tx, gen, gen_tx, gspec, st, normalize(b["x"]),
                                       b["y"])
  else:
    one = lambda st, root, b: DC.step(
        model, tx, gen, gen_tx, spec, st, normalize(b["x"]), b["y"],
        K.per_sample(K.stream(jax.random.wrap_key_data(root), K.OUTER, st.classifier.step),
                     b["idx"]))
  step_jit = jax.jit(one, out_shardings=(rep, rep), donate_argnums=0)
  root = sharding.put_replicated(mesh, root_data)
  fit = ds.fit_indices
  run_.say(f"{cfg.method}: generator and {cfg.model} classifier, batch {cfg.batch_size}, "
           f"steps {start}->{cfg.train_steps}")

  def step_fn(st, step):
    if cfg.dc_reset_every and step and step % cfg.dc_reset_every == 0:
      st = st.replace(classifier=_fresh_classifier(cfg, ds, mesh, step))
    batch = sharding.read_batch(mesh, fit[batch_indices(cfg.seed, step, len(fit),
                                                        cfg.batch_size)],
                                ds.train_images, ds.train_labels)
    return step_jit(st, root, batch)

  state, _, finished = run_.loop(
      state, start, loop.Schedule.of(cfg), step_fn,
      lambda st: ({"dc": st, "root": root_data}, {}), what=f"{cfg.method} classifier",
      record=lambda s, m: {"step": s, **m},
      extra=lambda m: f"clean loss {m['clean_loss']:.3f}  " + (
          f"λ {m['lambda']:.3f}  " if "lambda" in m else ""))
  if not finished:
    return None
  run_.close_checkpoints()
  return final_pass(gen, spec, state, ds, mesh, cfg.batch_size, run_.say), {}


def final_pass(gen, spec: DC.DCSpec, state: DC.DCState, ds: Dataset, mesh, batch_size: int,
               say) -> np.ndarray:
  """quantize(ρu g(x)) for every training index, in dataset order (int8 levels)."""
  levels = whole_levels(spec.radius)
  make = jax.jit(lambda p, x: N.quantize(DC.noise_of(gen, p, spec, normalize(x)), levels))
  out = np.zeros(ds.train_images.shape, np.int8)
  written = np.zeros(ds.num_train, np.int32)
  t0 = time.time()
  for idx, valid in padded_batches(ds.num_train, batch_size):
    batch = sharding.read_batch(mesh, idx, ds.train_images, ds.train_labels)
    noise = sharding.to_host(make(state.gen_params, batch["x"]))
    out[idx[:valid]] = noise[:valid]
    written[idx[:valid]] += 1
  if not (written == 1).all():
    raise RuntimeError(f"dc final pass wrote {int((written == 1).sum())} of {ds.num_train} once")
  say(f"dc final pass: {ds.num_train} images in {time.time() - t0:.1f} s")
  return out
