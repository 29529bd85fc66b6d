"""ECLIPSE (Wang et al., "ECLIPSE: Expunging Clean-label Indiscriminate Poisons via Sparse
Diffusion Purification", ESORICS 2024; read from CGCL-codes/ECLIPSE, ``purification.py``,
``runners/improved_diffusion.py``, ``train.py``; docs/method.md, "The thief's defenses").

Two parts:

- **Sparse diffusion purification.** A denoising diffusion model (ε-prediction, the improved-
  diffusion cosine schedule of ``T`` steps) trained on a few clean images the thief holds.
  Each published image (normalised; x0 is it scaled to [-1, 1]) is noised to step t*,
  x_t* = √ā x0 + √(1 − ā) ε, which drowns the poison, then denoised by ancestral steps back to
  x_0; the victim trains on the result. The release: T 4000, t* 100 (noise of std ≈ 0.05 of
  [-1, 1], 6.4 levels), all 100 steps, a 128-channel UNet trained 250K steps on 2000 CIFAR-10
  test images enlarged to 8000.
  Here a small UNet ([`Denoiser`][Denoiser]) trained only on the steps it will undo (t < t*),
  the chain respaced to fewer steps ([`spacing`][spacing]), and the fixed posterior variance
  β̃ in place of the release's learned one.
- **Corruption compensation** ([`compensate`][compensate]), per training batch after the flip and
  crop: grayscale with probability p (0.4), Gaussian noise of std σ (0.05 of [0, 1]) clipped to
  [0, 1], truncated to whole levels (the release's ``ToPILImage``).
"""
from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from sem_jax.core import checks
from sem_jax.errors import SemJaxError

MAX_BETA = 0.999      # improved diffusion clips each β_t to this
COSINE_S = 0.008      # the cosine schedule's offset s
LUMA = (0.299, 0.587, 0.114)   # PIL's convert("L") weights (RandomGrayscale on an image)


def cosine_betas(steps: int) -> np.ndarray:
  """(steps,) float64 β_t of the cosine schedule (Nichol & Dhariwal 2021):
  ā(t) = f(t) / f(0), f(t) = cos²((t / T + s) / (1 + s) · π / 2), β_t = min(1 − ā(t + 1) / ā(t),
  0.999)."""
  if steps < 1:
    raise SemJaxError(f"cosine_betas: steps must be >= 1, got {steps}")
  f = lambda t: math.cos((t / steps + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2
  return np.array([min(1 - f(t + 1) / f(t), MAX_BETA) for t in range(steps)], np.float64)


def alphas_bar(betas: np.ndarray) -> np.ndarray:
  """ā_t = Π_{s<=t} (1 − β_s), float64."""
  return np.cumprod(1.0 - np.asarray(betas, np.float64))


def _time_embedding(t: jax.Array, dim: int) -> jax.Array:
  """(B, dim) sinusoidal embedding of integer steps t (B,)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half) / half)
  a = t.astype(jnp.float32)[:, None] * freqs[None]
  return jnp.concatenate([jnp.sin(a), jnp.cos(a)], axis=-1)


class _Block(nn.Module):
  """GroupNorm, SiLU, 3x3 conv, plus the step embedding, twice, with a residual."""
  channels: int

  @nn.compact
  def __call__(self, x, emb):
    groups = min(8, self.channels)
    h = nn.Conv(self.channels, (3, 3))(nn.silu(nn.GroupNorm(min(8, x.shape[-1]))(x)))
    h = h + nn.Dense(self.channels)(nn.silu(emb))[:, None, None, :]
    h = nn.Conv(self.channels, (3, 3))(nn.silu(nn.GroupNorm(groups)(h)))
    skip = x if x.shape[-1] == self.channels else nn.Conv(self.channels, (1, 1))(x)
    return skip + h


class Denoiser(nn.Module):
  """ε̂(x_t, t): a small UNet, two resolutions (``width`` and 2 ``width`` channels, one block
  each way), the step's sinusoidal embedding added in every block. x_t (B, H, W, C) in about
  [-1, 1], t (B,) integers; H and W even. ``width`` is a multiple of 8 (its GroupNorms hold
  8 groups)."""
  width: int = 32

  def __post_init__(self):
    if not (isinstance(self.width, int) and self.width >= 8 and self.width % 8 == 0):
      raise SemJaxError(f"eclipse.Denoiser: width must be a positive multiple of 8 (its "
                        f"GroupNorms hold 8 groups), got {self.width}")
    super().__post_init__()

  @nn.compact
  def __call__(self, x, t):
    w = self.width
    emb = nn.Dense(4 * w)(nn.silu(nn.Dense(4 * w)(_time_embedding(t, w))))
    h0 = _Block(w)(nn.Conv(w, (3, 3))(x), emb)
    h1 = _Block(2 * w)(nn.avg_pool(h0, (2, 2), (2, 2)), emb)
    h1 = _Block(2 * w)(h1, emb)
    up = jax.image.resize(h1, (h1.shape[0], *h0.shape[1:3], h1.shape[-1]), "nearest")
    h = _Block(w)(jnp.concatenate([up, h0], axis=-1), emb)
    return nn.Conv(x.shape[-1], (3, 3), kernel_init=nn.initializers.zeros)(
        nn.silu(nn.GroupNorm(min(8, w))(h)))


def loss(params, model: Denoiser, abar: jax.Array, x0, t, eps):
  """Mean squared error of ε̂ against the ε that made x_t = √ā_t x0 + √(1 − ā_t) ε."""
  a = abar[t][:, None, None, None]
  xt = jnp.sqrt(a) * x0 + jnp.sqrt(1 - a) * eps
  return jnp.mean((model.apply({"params": params}, xt, t) - eps) ** 2)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _train_step(model: Denoiser, tx, t_star: int, params, opt_state, abar, x0, key):
  kt, ke = jax.random.split(key)
  t = jax.random.randint(kt, (x0.shape[0],), 0, t_star)
  eps = jax.random.normal(ke, x0.shape)
  value, grads = jax.value_and_grad(loss)(params, model, abar, x0, t, eps)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, value


def train_step(model: Denoiser, tx, t_star: int, params, opt_state, abar, x, key):
  """One step on a batch of clean images ``x`` (normalised, x / 255 − 0.5; scaled to the
  diffusion's [-1, 1] here): t uniform in [0, t*), ε ~ N(0, I). Returns (params, opt_state,
  loss). ``key`` is one key for the batch: it draws every image's t and ε."""
  checks.normalised_images(x, "eclipse.train_step")
  key = checks.as_typed(key, "eclipse.train_step")
  if key.shape != ():
    raise SemJaxError(f"eclipse.train_step takes one key for the batch (it draws every "
                      f"image's t and ε from it), got keys of shape {key.shape}: pass "
                      "jax.random.key(seed) or one fold of it per step")
  return _train_step(model, tx, t_star, params, opt_state, abar, to_diffusion(x), key)


def to_diffusion(x: jax.Array) -> jax.Array:
  """Normalised images (x / 255 − 0.5) in the diffusion's units, [-1, 1]."""
  return 2.0 * x


def to_normalised(x: jax.Array) -> jax.Array:
  """The chain's end x_0 (units of [-1, 1]) as normalised images, clipped to [-0.5, 0.5]."""
  return jnp.clip(x / 2.0, -0.5, 0.5)


def diffuse(abar: jax.Array, x: jax.Array, t: int, eps: jax.Array) -> jax.Array:
  """x_t = √ā_t x0 + √(1 − ā_t) ε at one step t for a batch of normalised images ``x``
  (x0 = [`to_diffusion`][to_diffusion](x)); x_t is in the diffusion's units, the state that
  [`reverse_step`][reverse_step] and [`denoise_step`][denoise_step] take."""
  checks.normalised_images(x, "eclipse.diffuse")
  if tuple(eps.shape) != tuple(x.shape):
    raise SemJaxError(f"eclipse.diffuse: eps has shape {tuple(eps.shape)}, the images "
                      f"{tuple(x.shape)}")
  return jnp.sqrt(abar[t]) * to_diffusion(x) + jnp.sqrt(1 - abar[t]) * eps


def spacing(t_star: int, steps: int) -> np.ndarray:
  """The ``steps`` diffusion steps the denoising visits, evenly spaced in [0, t*) and ending
  at t* − 1 (improved diffusion's respacing; steps = t*: every step, as the release)."""
  if not 1 <= steps <= t_star:
    raise SemJaxError(f"eclipse: the denoising steps must be in [1, t*={t_star}], got {steps}")
  if steps == 1:
    return np.array([t_star - 1], np.int32)
  return np.unique(np.round(np.linspace(0, t_star - 1, steps)).astype(np.int32))


def reverse_step(eps_fn, abar: jax.Array, x, t, t_prev, noise):
  """The chain's state x (the diffusion's units, as [`diffuse`][diffuse] returns it) at step
  t_prev from step t (t_prev < t; -1: the image x_0, which
  [`to_normalised`][to_normalised] turns back into normalised images), improved diffusion's
  ``p_sample`` on the respaced chain with a fixed variance: β = 1 − ā_t / ā_prev,
  x̂0 = (x − √(1 − ā_t) ε̂) / √ā_t clipped to [-1, 1], the posterior mean
  μ̃ = (√ā_prev β x̂0 + √(1 − β) (1 − ā_prev) x) / (1 − ā_t), plus √β̃ ``noise`` with
  β̃ = β (1 − ā_prev) / (1 − ā_t) (none when t_prev = −1). ``eps_fn(x, t)`` gives ε̂; t and
  t_prev are scalars (traced or not)."""
  a_t = abar[t]
  a_prev = jnp.where(t_prev >= 0, abar[jnp.maximum(t_prev, 0)], 1.0)
  beta = 1 - a_t / a_prev
  eps = eps_fn(x, jnp.full((x.shape[0],), t, jnp.int32))
  x0 = jnp.clip((x - jnp.sqrt(1 - a_t) * eps) / jnp.sqrt(a_t), -1.0, 1.0)
  mean = (jnp.sqrt(a_prev) * beta * x0 + jnp.sqrt(1 - beta) * (1 - a_prev) * x) / (1 - a_t)
  var = beta * (1 - a_prev) / (1 - a_t)
  return mean + jnp.where(t_prev >= 0, jnp.sqrt(var), 0.0) * noise


@functools.partial(jax.jit, static_argnums=(0,))
def denoise_step(model: Denoiser, params, abar: jax.Array, x, t, t_prev, noise):
  """[`reverse_step`][reverse_step] with ``model``'s ε̂ (jitted once per model and shape)."""
  return reverse_step(lambda xx, tt: model.apply({"params": params}, xx, tt), abar, x, t,
                      t_prev, noise)


def compensate(x: jax.Array, keys: jax.Array, gray_p: float, noise_std: float) -> jax.Array:
  """The corruption compensation on normalised training images x (B, H, W, C) with one key per
  image: grayscale (PIL's luma, rounded) with probability ``gray_p`` (colour images only),
  then N(0, noise_std²) noise in [0, 1] units clipped to [0, 1], truncated to whole levels."""
  checks.normalised_images(x, "eclipse.compensate", check_range=False)
  keys = checks.sample_keys(keys, x.shape[0], "eclipse.compensate")
  if not (0 <= gray_p <= 1 and math.isfinite(noise_std) and noise_std >= 0):
    raise SemJaxError(f"eclipse.compensate: gray_p must be in [0, 1] and noise_std (a fraction "
                      f"of [0, 1]) >= 0, got {gray_p}, {noise_std}")
  if noise_std > 1:
    raise SemJaxError(f"eclipse.compensate: noise_std={noise_std:g} is above 1: it is a "
                      f"fraction of [0, 1], not pixel levels ({noise_std / 255:.3g})")

  def one(img, key):
    kg, kn = jax.random.split(key)
    v = img + 0.5
    if v.shape[-1] == 3:
      gray = jnp.round(jnp.tensordot(v * 255.0, jnp.asarray(LUMA, v.dtype), 1))[..., None] / 255.0
      v = jnp.where(jax.random.uniform(kg) < gray_p, jnp.broadcast_to(gray, v.shape), v)
    v = jnp.clip(v + noise_std * jax.random.normal(kn, v.shape, v.dtype), 0.0, 1.0)
    return jnp.floor(v * 255.0) / 255.0 - 0.5

  return jax.vmap(one)(x, keys)
