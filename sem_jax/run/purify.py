"""The purifying defenses' runs, seeded by the victim's seed: ``dvae`` trains the D-VAE
([`sem_jax.core.thief.dvae`][sem_jax.core.thief.dvae]) on the published training images and returns their
reconstructions; ``eclipse`` trains ECLIPSE's denoiser ([`sem_jax.core.thief.eclipse`][sem_jax.core.thief.eclipse]) on a
few clean test images and returns the published images noised and denoised.

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

from sem_jax.core import keys as K
from sem_jax.core.augment import train_view
from sem_jax.core.thief import dvae, eclipse as E
from sem_jax.core.units import normalize
from sem_jax.errors import SemJaxError

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


ECLIPSE_BATCH = 64     # the denoiser's training batch
ECLIPSE_BLOCK = 500    # images denoised at once (memory, not results: each image's noise is its own)


def eclipse_clean_rows(cfg, num_test: int) -> np.ndarray:
  """The test rows the thief holds clean (``eclipse_clean`` of them, a seeded draw), sorted."""
  if cfg.eclipse_clean > num_test:
    raise SemJaxError(f"eclipse_clean={cfg.eclipse_clean} is more than the {num_test} test "
                      "images the clean set is drawn from")
  key = jax.random.fold_in(K.stream(K.root_key(cfg.seed), K.ECLIPSE), 0)
  return np.sort(np.asarray(jax.random.permutation(key, num_test))[:cfg.eclipse_clean])


def eclipse(images: np.ndarray, clean: np.ndarray, cfg, log: Callable[[str], None] = print,
            stop: Callable[[], bool] = lambda: False) -> Optional[np.ndarray]:
  """uint8 (N, H, W, C) published images -> ECLIPSE's purified ones, uint8, the denoiser
  trained ``eclipse_steps`` on the uint8 ``clean`` images (flip + pad-4 crops); None when
  ``stop()`` ended it."""
  if images.shape[1] % 2 or images.shape[2] % 2:
    raise SemJaxError(f"eclipse needs images of even height and width, got {images.shape[1:3]}")
  model = E.Denoiser(cfg.eclipse_width)
  abar = jnp.asarray(E.alphas_bar(E.cosine_betas(cfg.eclipse_schedule)), jnp.float32)
  root = K.stream(K.root_key(cfg.seed), K.ECLIPSE)
  k_init, k_order, k_step, k_aug, k_noise = [jax.random.fold_in(root, i) for i in range(1, 6)]
  params = model.init(k_init, jnp.zeros((1, *images.shape[1:])), jnp.zeros((1,), jnp.int32))
  params = params["params"]
  tx = optax.adam(cfg.eclipse_lr)
  opt_state = tx.init(params)
  n, batch = len(clean), min(ECLIPSE_BATCH, len(clean))
  t0, value = time.time(), float("nan")
  for step in range(cfg.eclipse_steps):
    if step % STOP_EVERY == 0 and step and stop():
      log(f"eclipse: stopped at step {step}/{cfg.eclipse_steps} (SIGTERM received)")
      return None
    idx = np.sort(np.asarray(jax.random.choice(jax.random.fold_in(k_order, step), n, (batch,),
                                               replace=False)))
    keys = jax.random.split(jax.random.fold_in(k_aug, step), batch)
    view = train_view(normalize(clean[idx]), keys, 4, 0)
    params, opt_state, value = E.train_step(model, tx, cfg.eclipse_t, params, opt_state, abar,
                                            view, jax.random.fold_in(k_step, step))
    if (step + 1) % max(cfg.eclipse_steps // 4, 1) == 0:
      log(f"eclipse: denoiser step {step + 1}/{cfg.eclipse_steps}, loss {float(value):.4f} "
          f"({(step + 1) / (time.time() - t0):.1f} steps/s)")
  visits = [int(t) for t in E.spacing(cfg.eclipse_t, cfg.eclipse_denoise_steps)]

  def draws(rows, t):    # each image's own normal draw at step t (t = t*: the forward noise)
    return jax.vmap(lambda r: jax.random.normal(
        jax.random.fold_in(jax.random.fold_in(k_noise, r), t), images.shape[1:]))(rows)

  out = np.empty_like(images)
  t1 = time.time()
  for s in range(0, len(images), ECLIPSE_BLOCK):
    if stop():
      log("eclipse: stopped during the purification (SIGTERM received)")
      return None
    rows = jnp.arange(s, min(s + ECLIPSE_BLOCK, len(images)))
    x = E.diffuse(abar, normalize(images[s:s + ECLIPSE_BLOCK]), visits[-1],
                  draws(rows, cfg.eclipse_t))
    for i in reversed(range(len(visits))):
      t_prev = visits[i - 1] if i else -1
      x = E.denoise_step(model, params, abar, x, jnp.int32(visits[i]), jnp.int32(t_prev),
                         draws(rows, visits[i]))
    out[s:s + ECLIPSE_BLOCK] = np.asarray(jnp.floor((E.to_normalised(x) + 0.5) * 255.0))
  log(f"eclipse: {len(images)} images noised to step {cfg.eclipse_t} of {cfg.eclipse_schedule} "
      f"and denoised in {len(visits)} steps, {time.time() - t1:.0f} s")
  return out
