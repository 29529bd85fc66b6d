"""Defensive-noise estimators (EM, REM, SEM) and the crafting step (SPEC section 4).

All three share one estimator. For each of J samples s = (t, offset key):

    u_s = t(clip(x + δ))                      # flows back to δ through t and the clip
    a_s = offset(u_s)                         # EM: u_s; SEM: clip(u_s + U[-ρa, ρa]); REM: PGD(u_s)
    g_s = ∂/∂δ  Σ_b < u_s, stop_gradient(∇_a CE(f(a_s), y)) >

and the descent direction is mean_s g_s (the J draws are one ``jax.vmap`` over sample keys).
``craft`` starts from δ ~ U[-ρu, ρu] and takes K steps δ <- clip(δ - α sign(g), -ρu, ρu)
inside ``lax.fori_loop``. The model f is frozen and in eval mode.

Units: x and δ are in normalised units (x in [-0.5, 0.5], δ a fraction of the
[0, 1] range); :class:`CraftSpec` stores radii and steps in those units, built from
pixel levels by :func:`craft_spec`. ``quantize`` turns δ into int8 pixel levels.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sem_jax import attacks
from sem_jax import keys as K
from sem_jax.augment import augment, model_view
from sem_jax.methods import METHODS
from sem_jax.runtime import loops_unrolled

LogitsFn = Callable[[jax.Array], jax.Array]


def no_offset(spec: "CraftSpec", logits_fn: LogitsFn, u, y, keys):
  """EM / TAP (and ρa = 0): a = u."""
  return jax.lax.stop_gradient(u)


def uniform_offset(spec: "CraftSpec", logits_fn: LogitsFn, u, y, keys):
  """SEM: one uniform draw in the ρa ball (L∞ box or L2 ball) around u, in [-0.5, 0.5]."""
  return jax.lax.stop_gradient(attacks.random_start(keys, u, spec.attack))


def pgd_offset(spec: "CraftSpec", logits_fn: LogitsFn, u, y, keys):
  """REM: PGD from u inside the ρa ball (the inner maximisation)."""
  return attacks.attack(logits_fn, u, y, keys, spec.attack)


OFFSETS = {"none": no_offset, "uniform": uniform_offset, "pgd": pgd_offset}


@dataclasses.dataclass(frozen=True)
class CraftSpec:
  """Static hyperparameters of crafting; radii and steps as fractions of [0, 1].

  ``offset`` and ``zero_start`` are the method's parts (see :mod:`sem_jax.methods`),
  chosen by :func:`craft_spec`; ``descends`` False makes :func:`make_noise` the
  random baseline.
  """
  method: str                 # name, for records; the parts below decide what is computed
  radius: float               # ρu
  steps: int                  # K
  step_size: float            # α
  num_samples: int            # J
  adv_radius: float = 0.0     # ρa (SEM's random offset, REM's inner PGD)
  adv_steps: int = 0          # REM inner PGD steps
  adv_step_size: float = 0.0  # REM inner PGD step
  adv_norm: str = "linf"
  augment_pad: int = 4        # pad-and-crop padding in pixels; < 0 disables augmentation
  crop_size: int = 0          # >0: random-resized crops of this size (augmenting) / centre crop
  radius_levels: int = 8      # floor(ρu in levels): the int8 bound after quantisation
  unroll: bool = False        # unroll the K-step and inner PGD loops (XLA:CPU speed)
  offset: Callable = no_offset   # a = offset(spec, logits_fn, u, y, keys)
  zero_start: bool = False    # δ starts at 0 (TAP with tap_start "zero") instead of U[-ρu, ρu]
  descends: bool = True       # False: the noise is the U[-ρu, ρu] start itself (random)
  project: bool = False       # keep x + δ in [-0.5, 0.5] (the feasible set of the published image)

  @property
  def attack(self) -> attacks.AttackSpec:
    """The ρa attack of the offset (SEM's ball, REM's inner PGD)."""
    return attacks.AttackSpec(self.adv_radius, self.adv_steps, self.adv_step_size,
                              self.adv_norm, self.unroll)


def craft_spec(cfg) -> CraftSpec:
  """Build a CraftSpec from a GenerateConfig: pixel levels -> fractions, method -> parts."""
  parts = METHODS[cfg.method]
  offset = OFFSETS[parts.offset] if cfg.adv_radius > 0 else no_offset
  return CraftSpec(
      method=cfg.method, radius=cfg.noise_radius / 255, steps=cfg.noise_steps,
      step_size=cfg.noise_step_size / 255, num_samples=cfg.num_samples,
      adv_radius=cfg.adv_radius / 255, adv_steps=cfg.adv_steps,
      adv_step_size=cfg.adv_step_size / 255, adv_norm=cfg.adv_norm,
      augment_pad=cfg.augment_pad if cfg.augment else -1, crop_size=cfg.crop_size,
      radius_levels=int(math.floor(cfg.noise_radius)), unroll=loops_unrolled(cfg.unroll_loops),
      offset=offset, descends=parts.descends,
      zero_start=parts.start == "zero" or (cfg.method == "tap" and cfg.tap_start == "zero"),
      project=cfg.project_to_valid_range)


def _transform(spec: CraftSpec, x, aug_keys):
  """δ -> u = t(clip(x + δ)) for one augmentation draw per image: the differentiable part."""
  def to_u(delta):
    v = jnp.clip(x + delta, attacks.LO, attacks.HI)
    if spec.augment_pad >= 0:
      return augment(v, aug_keys, spec.augment_pad, crop_size=spec.crop_size)
    return model_view(v, spec.crop_size)
  return to_u


def expected_grad(spec: CraftSpec, logits_fn: LogitsFn, x, y, delta, keys):
  """Mean over J samples of the method's gradient estimate wrt δ.

  The J draws of (t, offset key) are a ``jax.vmap`` over sample keys; the J·B
  transformed images then go through the network as ONE batch (folding J into
  the batch axis), which on XLA:CPU is ~4x faster than vmapping the network.

  Args:
    x: (B, H, W, C) normalised clean images; y: (B,) labels.
    delta: (B, H, W, C) current noise (fractions of [0, 1]).
    keys: (B,) per-sample keys for this descent step; sample j of image b uses
      split(keys[b], J)[j].
  Returns:
    (grad (B, H, W, C), per-sample loss (B,) averaged over the J samples).
  """
  J, B = spec.num_samples, x.shape[0]
  sample_keys = K.split_each(keys, J)                           # (J, B)
  k_aug, k_off = jax.vmap(lambda k: K.split_each(k, 2))(sample_keys).swapaxes(0, 1)  # (2,J,B)->
  to_u_all = lambda d: jax.vmap(lambda ka: _transform(spec, x, ka)(d))(k_aug)  # (J, B, ...)
  u, vjp = jax.vjp(to_u_all, delta)
  flat = lambda t: t.reshape((J * B,) + t.shape[2:])
  yj = jnp.tile(y, J)
  a = spec.offset(spec, logits_fn, flat(u), yj, flat(k_off))

  def loss_fn(a_):
    per_sample = attacks.ce(logits_fn(a_), yj)
    return per_sample.sum(), per_sample

  g_a, loss = jax.grad(loss_fn, has_aux=True)(a)   # one forward + backward pass over J·B images
  (g_delta,) = vjp(g_a.reshape(u.shape))          # sums the J chain-rule terms
  return g_delta / J, loss.reshape(J, B).mean(0)


def expected_loss(spec: CraftSpec, logits_fn: LogitsFn, x, y, delta, keys) -> jax.Array:
  """Per-sample loss the method minimises: mean over J of CE(f(offset(t(clip(x+δ))))); (B,)."""
  return expected_grad(spec, logits_fn, x, y, delta, keys)[1]


def craft(spec: CraftSpec, logits_fn: LogitsFn, x, y, keys) -> jax.Array:
  """Defensive noise δ for a batch: K sign-descent steps from U[-ρu, ρu] (or from 0).

  For TAP, pass the target labels (y + 1) mod C as ``y``: descending their CE is the
  targeted attack.

  Args:
    spec: static hyperparameters.
    logits_fn: frozen eval-mode model, (B, H, W, C) -> (B, classes).
    x: (B, H, W, C) normalised clean images in [-0.5, 0.5]; y: (B,) labels.
    keys: (B,) per-sample keys; the result for one image depends only on its key,
      its image and label, and the model.
  Returns:
    δ (B, H, W, C) float32 in [-ρu, ρu] (fractions of [0, 1]).
  """
  x = jax.lax.stop_gradient(x)
  if spec.zero_start:
    delta0 = jnp.zeros_like(x)
  else:
    delta0 = K.uniform_each(K.fold_each(keys, 0), x.shape[1:], spec.radius)

  def body(k, delta):
    g, _ = expected_grad(spec, logits_fn, x, y, delta, K.fold_each(keys, k + 1))
    return _project(spec, x, delta - spec.step_size * jnp.sign(g))

  return jax.lax.fori_loop(0, spec.steps, body, _project(spec, x, delta0), unroll=spec.unroll)


def _project(spec: CraftSpec, x, delta):
  """Onto |δ| <= ρu, and with ``spec.project`` also onto -0.5 <= x + δ <= 0.5."""
  delta = jnp.clip(delta, -spec.radius, spec.radius)
  if spec.project:
    delta = jnp.clip(x + delta, attacks.LO, attacks.HI) - x
  return delta


def make_noise(spec: CraftSpec, logits_fn: LogitsFn, x, y, keys) -> jax.Array:
  """The method's noise for a batch: :func:`craft`, or for the random baseline U[-ρu, ρu]."""
  if not spec.descends:
    return random_noise(keys, x.shape[1:], spec.radius)
  return craft(spec, logits_fn, x, y, keys)


def quantize(delta: jax.Array, radius_levels: int) -> jax.Array:
  """δ (fractions of [0, 1]) -> int8 pixel levels round(255 δ), clipped to ±floor(ρu)."""
  q = jnp.round(delta * 255.0)
  return jnp.clip(q, -radius_levels, radius_levels).astype(jnp.int8)


def random_noise(keys: jax.Array, shape, radius: float) -> jax.Array:
  """The random baseline: δ ~ U[-ρu, ρu] per sample (fractions of [0, 1])."""
  return K.uniform_each(keys, shape, radius)


def apply_noise(x_uint8: jax.Array, noise_int8: jax.Array) -> jax.Array:
  """Normalised protected image: clip(x + noise, 0, 255) / 255 - 0.5, exactly as published."""
  v = jnp.clip(x_uint8.astype(jnp.int32) + noise_int8.astype(jnp.int32), 0, 255)
  return v.astype(jnp.float32) / 255.0 - 0.5


def max_abs_levels(noise: np.ndarray) -> int:
  """max |value| of an int8 table without int16 temporaries (min/max scan only)."""
  if noise.size == 0:
    return 0
  return max(-int(noise.min()), int(noise.max()))


def check_noise(noise: np.ndarray, radius_levels: float) -> None:
  """Raise ValueError unless noise is int8 with |value| <= radius (pixel levels)."""
  if noise.dtype != np.int8:
    raise ValueError(f"noise must be int8, got {noise.dtype}")
  m = max_abs_levels(noise)
  if m > radius_levels:
    raise ValueError(f"noise exceeds its radius: max |value| {m} > {radius_levels} levels")
