"""Defensive-noise estimators (EM, REM, SEM, TAP) and the crafting step (docs/method.md,
"The noise generators").

All methods share one estimator. For each of J samples s = (t, offset key):

    u_s = t(clip(x + δ))                      # flows back to δ through t and the clip
    a_s = offset(u_s)                         # EM: u_s; SEM: clip(u_s + U[-ρa, ρa]); REM: PGD(u_s)
    g_s = ∂/∂δ  Σ_b < u_s, stop_gradient(∇_a CE(f(a_s), y)) >

and the descent direction is mean_s g_s (the J draws are one ``jax.vmap`` over sample keys).
:func:`craft` starts from δ ~ U[-ρu, ρu] and takes K sign-descent steps with
:func:`sem_jax.core.attacks.iterate`, projecting onto |δ| <= ρu. The model f is frozen and in
eval mode: any ``logits_fn(x) -> logits``.

Units: x and δ are normalised (x in [-0.5, 0.5], δ a fraction of the [0, 1] range);
:class:`CraftSpec` stores radii and steps in those units. Build one from pixel levels with the
constructors of :mod:`sem_jax.core.crafting.crafters` (``sem``, ``rem``, ``em``, ``tap``, ``random``).
``quantize`` turns δ into int8 pixel levels.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.core import attacks
from sem_jax.core import keys as K
from sem_jax.core.augment import augment, model_view
from sem_jax.core.crafting.methods import METHODS
from sem_jax.core.units import INPUT_HI, INPUT_LO, LEVELS, normalize, protect, whole_levels
from sem_jax.errors import SemJaxError

LogitsFn = Callable[[jax.Array], jax.Array]
STARTS = ("uniform", "zero")


def no_offset(spec: "CraftSpec", logits_fn: LogitsFn, u, y, keys):
  """EM / TAP (and ρa = 0): a = u."""
  return jax.lax.stop_gradient(u)


def uniform_offset(spec: "CraftSpec", logits_fn: LogitsFn, u, y, keys):
  """SEM: one uniform draw in the ρa ball (L∞ box or L2 ball) around u, in [-0.5, 0.5]."""
  return jax.lax.stop_gradient(attacks.random_start(keys, u, spec.adversary))


def pgd_offset(spec: "CraftSpec", logits_fn: LogitsFn, u, y, keys):
  """REM: PGD from u inside the ρa ball (the inner maximisation)."""
  return spec.adversary(logits_fn, u, y, keys)


OFFSETS = {"none": no_offset, "uniform": uniform_offset, "pgd": pgd_offset}


@dataclasses.dataclass(frozen=True)
class CraftSpec:
  """The defensive-noise step of one method; radii and steps as fractions of [0, 1].

  What is computed follows from ``method`` alone (its parts in
  :data:`sem_jax.core.crafting.methods.METHODS`): a spec cannot pair SEM with EM's offset, and its
  int8 bound ``radius_levels`` is floor(ρu) of its own radius. Inconsistent fields raise.
  Calling the spec gives the noise of a batch (:func:`make_noise`).
  """
  method: str                 # sem | rem | em | tap | hypo | random
  radius: float               # ρu
  steps: int = 10             # K sign-descent steps
  step_size: float = 1.6 / LEVELS   # α
  num_samples: int = 1        # J samples of (augmentation, offset) in the expectation
  adversary: attacks.AttackSpec = attacks.NO_ATTACK   # ρa: SEM's ball, REM's inner PGD
  augment_pad: int = 4        # pad-and-crop padding in pixels; < 0 disables augmentation
  crop_size: int = 0          # >0: random-resized crops of this size (augmenting) / centre crop
  project: bool = False       # keep x + δ in [-0.5, 0.5] (the feasible set of the published image)
  start: str = "uniform"      # δ before the first step: U[-ρu, ρu], or 0 (TAP only)
  unroll: bool = False        # unroll the K-step loop (XLA:CPU speed)

  def __post_init__(self):
    if self.method not in METHODS:
      raise SemJaxError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
    parts = METHODS[self.method]
    if parts.kind != "craft":
      raise SemJaxError(f"{self.method} is not a crafting loop (kind {parts.kind}); see "
                        "sem_jax.core.crafting.methods")
    if not 0 < self.radius <= 1:
      raise SemJaxError(f"radius (ρu as a fraction of [0, 1]) must be in (0, 1], got "
                        f"{self.radius} (pixel levels go through the constructors, e.g. "
                        "sem(radius=8))")
    if parts.descends and (self.steps < 1 or not self.step_size > 0 or self.num_samples < 1):
      raise SemJaxError(f"{self.method}: steps and num_samples must be >= 1 and step_size > 0, "
                        f"got {self.steps}, {self.num_samples}, {self.step_size}")
    if parts.offset == "none" and self.adversary != attacks.NO_ATTACK:
      raise SemJaxError(f"{self.method} has no adversarial offset; adversary applies to sem and "
                        "rem only")
    if self.start not in STARTS or (self.start == "zero" and not parts.zero_start):
      raise SemJaxError(f"start {self.start!r}: choose uniform (or zero, for tap and hypo)")

  @property
  def parts(self):
    return METHODS[self.method]

  @property
  def radius_levels(self) -> int:
    """floor(ρu in pixel levels): the int8 bound after quantisation."""
    return whole_levels(self.radius * LEVELS)

  @property
  def offset(self) -> Callable:
    """The method's offset a = offset(spec, logits_fn, u, y, keys); none where ρa = 0."""
    return OFFSETS[self.parts.offset] if self.adversary.radius > 0 else no_offset

  @property
  def descends(self) -> bool:
    return self.parts.descends

  @property
  def next_class_target(self) -> bool:
    """TAP: descend the cross-entropy of the target class (y + 1) mod C."""
    return self.parts.target == "next_class"

  def __call__(self, logits_fn: LogitsFn, x, y, keys) -> jax.Array:
    """δ for a normalised batch x with true labels y: :func:`make_noise`."""
    return make_noise(self, logits_fn, x, y, keys)

  def noise(self, logits_fn: LogitsFn, x_uint8, y, keys) -> jax.Array:
    """The int8 noise (pixel levels) of a uint8 batch: ``quantize(self(logits_fn, normalize(x)))``."""
    return quantize(self(logits_fn, normalize(x_uint8), y, keys), self.radius_levels)


def _transform(spec: CraftSpec, x, aug_keys):
  """δ -> u = t(clip(x + δ)) for one augmentation draw per image: the differentiable part."""
  def to_u(delta):
    v = jnp.clip(x + delta, INPUT_LO, INPUT_HI)
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
  chex.assert_rank(x, 4)
  chex.assert_equal_shape((x, delta))
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


def craft(spec: CraftSpec, logits_fn: LogitsFn, x, labels, keys) -> jax.Array:
  """K sign-descent steps of the estimator on ``labels`` from U[-ρu, ρu] (or from 0).

  Args:
    spec: static hyperparameters.
    logits_fn: frozen eval-mode model, (B, H, W, C) -> (B, classes).
    x: (B, H, W, C) normalised clean images in [-0.5, 0.5].
    labels: (B,) the labels whose cross-entropy is descended (TAP: the target classes;
      :func:`make_noise` chooses them from the true labels).
    keys: (B,) per-sample keys; the result for one image depends only on its key,
      its image and label, and the model.
  Returns:
    δ (B, H, W, C) float32 in [-ρu, ρu] (fractions of [0, 1]).
  """
  chex.assert_rank(x, 4)
  chex.assert_shape(labels, (x.shape[0],))
  chex.assert_shape(keys, (x.shape[0],))
  x = jax.lax.stop_gradient(x)
  if spec.start == "zero":
    delta0 = jnp.zeros_like(x)
  else:
    delta0 = K.uniform_each(K.fold_each(keys, 0), x.shape[1:], spec.radius)

  def descent(k, delta):
    g, _ = expected_grad(spec, logits_fn, x, labels, delta, K.fold_each(keys, k + 1))
    return -g

  return attacks.iterate(descent, _project(spec, x, delta0), steps=spec.steps,
                         step_size=spec.step_size, step=attacks.linf_step,
                         project=lambda d: _project(spec, x, d), unroll=spec.unroll)


def _project(spec: CraftSpec, x, delta):
  """Onto |δ| <= ρu, and with ``spec.project`` also onto -0.5 <= x + δ <= 0.5."""
  delta = jnp.clip(delta, -spec.radius, spec.radius)
  if spec.project:
    delta = jnp.clip(x + delta, INPUT_LO, INPUT_HI) - x
  return delta


def make_noise(spec: CraftSpec, logits_fn: LogitsFn, x, y, keys) -> jax.Array:
  """The method's noise δ for a batch with true labels y: the random baseline's U[-ρu, ρu],
  or :func:`craft` on y (TAP: on the target classes (y + 1) mod C, C = the logits' width)."""
  if not spec.descends:
    return random_noise(keys, x.shape[1:], spec.radius)
  if spec.next_class_target:
    y = (y + 1) % logits_fn(x[:1]).shape[-1]
  return craft(spec, logits_fn, x, y, keys)


def quantize(delta: jax.Array, radius_levels: int) -> jax.Array:
  """δ (fractions of [0, 1]) -> int8 pixel levels round(255 δ), clipped to ±floor(ρu)."""
  q = jnp.round(delta * LEVELS)
  return jnp.clip(q, -radius_levels, radius_levels).astype(jnp.int8)


def random_noise(keys: jax.Array, shape, radius: float) -> jax.Array:
  """The random baseline: δ ~ U[-ρu, ρu] per sample (fractions of [0, 1])."""
  return K.uniform_each(keys, shape, radius)


def apply_noise(x_uint8: jax.Array, noise_int8: jax.Array) -> jax.Array:
  """Normalised protected image: ``normalize(protect(x, noise))``, exactly as published."""
  chex.assert_equal_shape((x_uint8, noise_int8))
  return normalize(protect(x_uint8, noise_int8))


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
