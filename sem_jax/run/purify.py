"""The ``dvae`` defense's run: train the D-VAE ([`sem_jax.core.thief.dvae`][sem_jax.core.thief.dvae]) on the published
training images and return their reconstructions, seeded by the victim's seed.

Deterministic for a seed on one device count, so a resumed victim recomputes the same
purified images (the purification is not checkpointed: it takes seconds to minutes, a small
part of the victim's training). SIGTERM stops it within ``STOP_EVERY`` steps.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sem_jax.core.thief import dvae

from sem_jax.core import keys as K

BATCH = 128
STOP_EVERY = 8   # steps between two reads of ``stop`` (a collective on several hosts)


def purify(images: np.ndarray, cfg, log: Callable[[str], None] = print,
           stop: Callable[[], bool] = lambda: False) -> Optional[np.ndarray]:
  """uint8 (N, H, W, C) -> their D-VAE reconstructions, uint8 (rounded half to even); None
  when ``stop()`` (read every ``STOP_EVERY`` steps; SIGTERM in a run) ended the training."""
  model = dvae.VAE(cfg.dvae_latent)
  key = K.stream(K.root_key(cfg.seed), K.PURIFY)
  k_init, k_order, k_noise = jax.random.split(key, 3)
  x0 = jnp.zeros((1, *images.shape[1:]), jnp.float32)
  params = model.init(k_init, x0)["params"]
  tx = optax.adam(cfg.dvae_lr)
  opt_state = tx.init(params)
  n = len(images)
  batch = min(BATCH, n)
  t0, value = time.time(), float("nan")
  for step in range(cfg.dvae_steps):
    if step % STOP_EVERY == 0 and step and stop():
      log(f"dvae: stopped at step {step}/{cfg.dvae_steps} (SIGTERM received)")
      return None
    idx = np.asarray(jax.random.choice(jax.random.fold_in(k_order, step), n, (batch,),
                                       replace=False))
    x = jnp.asarray(images[np.sort(idx)], jnp.float32) / 255.0
    params, opt_state, value = dvae.train_step(model, tx, params, opt_state, x,
                                               jax.random.fold_in(k_noise, step), cfg.dvae_rate)
    if (step + 1) % max(cfg.dvae_steps // 4, 1) == 0:
      log(f"dvae: step {step + 1}/{cfg.dvae_steps}, loss {float(value):.3f} "
          f"({(step + 1) / (time.time() - t0):.1f} steps/s)")
  out = np.empty_like(images)
  for s in range(0, n, 1024):
    xh = dvae.reconstruct(model, params, jnp.asarray(images[s:s + 1024], jnp.float32) / 255.0)
    out[s:s + 1024] = np.asarray(jnp.clip(jnp.round(xh * 255), 0, 255)).astype(np.uint8)
  return out
