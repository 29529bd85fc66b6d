"""Defensive-noise estimators (EM, REM, SEM, TAP) and the crafting step (docs/method.md,
"The noise generators").

All methods share one estimator. For each of J samples s = (t, offset key):

    u_s = t(clip(x + δ))                      # flows back to δ through t and the clip
    a_s = offset(u_s)                         # EM: u_s; SEM: clip(u_s + U[-ρa, ρa]); REM: PGD(u_s)
    g_s = ∂/∂δ  Σ_b < u_s, stop_gradient(∇_a CE(f(a_s), y)) >

and the descent direction is mean_s g_s (the J draws are one ``jax.vmap`` over sample keys).
[`craft`][craft] starts from δ ~ U[-ρu, ρu] and takes K sign-descent steps with
[`sem_jax.core.attacks.iterate`][sem_jax.core.attacks.iterate], projecting onto |δ| <= ρu. The model f is frozen and in
eval mode: any ``logits_fn(x) -> logits``.

Units (docs/method.md, "Units"): radii and step sizes are pixel levels everywhere in the
public API ([`sem_jax.core.attacks.Levels`][sem_jax.core.attacks.Levels]); images x are normalised to [-0.5, 0.5] and δ,
the float perturbation the estimator descends, is a fraction of the [0, 1] range. "noise" is
always the int8 pixel levels that are stored and published ([`quantize`][quantize]). The
constructors of [`sem_jax.core.crafting.crafters`][sem_jax.core.crafting.crafters] (``sem``, ``rem``, ``em``, ``tap``,
``hypo``, ``random``) build a [`CraftSpec`][CraftSpec] with each method's defaults.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import chex
import jax
import jax.numpy as jnp

from sem_jax.core import attacks, checks
from sem_jax.core import keys as K
from sem_jax.core.augment import augment, model_view
from sem_jax.core.crafting.budgets import INT8_MAX
from sem_jax.core.crafting.methods import METHODS
from sem_jax.core.attacks import Levels
from sem_jax.core.units import INPUT_HI, INPUT_LO, LEVELS, InLevels, normalize, protect, whole_levels
from sem_jax.errors import SemJaxError

LogitsFn = Callable[[jax.Array], jax.Array]
STARTS = ("uniform", "zero")
# J, the samples of the expectation, where a spec leaves it out: the paper's 5 for the methods
# that average over augmentations, 1 for the fixed-model attacks.
DEFAULT_SAMPLES = {"sem": 5, "rem": 5, "em": 5, "tap": 1, "hypo": 1, "random": 0}


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
class CraftSpec(InLevels):
  """The defensive-noise step of one method, in pixel levels (docs/method.md).

  ``method`` names a preset of parts (`sem_jax.core.crafting.methods.METHODS`): the
  offset (EM none, SEM one uniform draw in the ρa ball, REM PGD), the labels descended and the
  start. Fields a method needs and the spec leaves out take that method's defaults: SEM and REM
  get the paper's adversary (ρa 4 levels, 10 steps of 0.8) and J = 5. A radius below one level
  (a fraction passed for levels), a step larger than the radius, or an adversary on a method
  without one is refused. ``loss``, ``offset``, ``init``, ``step`` and ``projection`` replace a
  preset's parts with your own callables.

  Calling the spec gives δ for normalised images ([`make_delta`][make_delta]); [`noise`][noise] gives the
  int8 noise of uint8 images.

  Attributes:
    method: sem, rem, em, tap, hypo or random: the preset of parts.
    radius: ρu in pixel levels (8 means 8/255).
    steps: K sign-descent steps.
    step_size: α in pixel levels, at most ``radius``.
    num_samples: J draws of (augmentation, offset) in the expectation; None: the method's
      (5 for sem, rem and em, 1 for tap and hypo).
    adversary: ρa as an [`AttackSpec`][sem_jax.core.attacks.AttackSpec]: SEM's ball, REM's PGD;
      None: the method's (the paper's ρa 4 for sem and rem, none for the others).
    augment_pad: pad-and-crop padding in pixels; < 0 disables augmentation.
    crop_size: > 0: random-resized crops of this size (augmenting) or a centre crop.
    project: keep x + δ in [-0.5, 0.5], the feasible set of the published image.
    start: δ before the first step: "uniform" U[-ρu, ρu], or "zero" (tap, hypo).
    unroll: unroll the K-step loop (faster on XLA:CPU, slower to compile).
    loss: ``(logits, labels) -> (B,)`` per-sample loss to descend; None: cross-entropy.
    offset_fn: ``(spec, logits_fn, u, y, keys) -> a``; None: the method's offset.
    init: ``(keys, x, radius_frac) -> δ0``; None: ``start``.
    step: ``(g, step_frac) -> increment``; None: the sign step.
    projection: ``(delta, x, radius_frac) -> delta``; None: the box (and ``project``).

  Example:
    >>> from sem_jax import core
    >>> spec = core.CraftSpec(method="sem", radius=8)
    >>> spec.adversary.radius, spec.num_samples, spec.int8_bound
    (4.0, 5, 8)
  """
  method: str                 # sem | rem | em | tap | hypo | random
  radius: Levels              # ρu in pixel levels (8 means 8/255)
  steps: int = 10             # K sign-descent steps
  step_size: Levels = 1.6     # α in pixel levels
  num_samples: int | None = None   # J samples of (augmentation, offset); None: the method's
  adversary: attacks.AttackSpec | None = None   # ρa: SEM's ball, REM's PGD; None: the method's
  augment_pad: int = 4        # pad-and-crop padding in pixels; < 0 disables augmentation
  crop_size: int = 0          # >0: random-resized crops of this size (augmenting) / centre crop
  project: bool = False       # keep x + δ in [-0.5, 0.5] (the feasible set of the published image)
  start: str = "uniform"      # δ before the first step: U[-ρu, ρu], or 0 (TAP, hypo)
  unroll: bool = False        # unroll the K-step loop (XLA:CPU speed)
  loss: attacks.LossFn | None = None   # (logits, labels) -> per-sample loss; None: cross-entropy
  offset_fn: Callable | None = None    # (spec, logits_fn, u, y, keys) -> a; None: the method's
  init: Callable | None = None         # (keys, x, radius_frac) -> δ0; None: ``start``
  step: Callable | None = None         # (g, step_frac) -> increment; None: sign step
  projection: Callable | None = None   # (δ, x, radius_frac) -> δ; None: the box (and ``project``)

  def __post_init__(self):
    if self.method not in METHODS:
      raise SemJaxError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
    parts = METHODS[self.method]
    if parts.kind != "craft":
      raise SemJaxError(f"{self.method} is not a crafting loop (kind {parts.kind}); see "
                        "sem_jax.core.crafting.methods")
    checks.levels("radius", self.radius, fn=f"CraftSpec({self.method})")
    if whole_levels(self.radius) > INT8_MAX:
      raise SemJaxError(f"CraftSpec({self.method}): radius={self.radius:g} levels does not fit "
                        f"int8 noise (at most {INT8_MAX} levels)")
    if self.num_samples is None:
      object.__setattr__(self, "num_samples", DEFAULT_SAMPLES[self.method])
    if self.adversary is None:
      object.__setattr__(self, "adversary", attacks.AttackSpec() if parts.offset != "none"
                         else attacks.NO_ATTACK)
    if not isinstance(self.adversary, attacks.AttackSpec):
      raise SemJaxError(f"adversary must be a core.AttackSpec, got {type(self.adversary).__name__}")
    if parts.descends:
      if self.steps < 1 or self.num_samples < 1 or not self.step_size > 0:
        raise SemJaxError(f"{self.method}: steps and num_samples must be >= 1 and step_size > 0, "
                          f"got {self.steps}, {self.num_samples}, {self.step_size}")
      checks.travel(f"CraftSpec({self.method})", self.steps, self.step_size, self.radius)
    if parts.offset == "none" and self.adversary != attacks.NO_ATTACK and self.offset_fn is None:
      raise SemJaxError(f"{self.method} has no adversarial offset; adversary applies to sem and "
                        "rem only")
    if self.start not in STARTS or (self.start == "zero" and not parts.zero_start):
      raise SemJaxError(f"start {self.start!r}: choose uniform (or zero, for tap and hypo)")

  @property
  def parts(self):
    return METHODS[self.method]

  @property
  def int8_bound(self) -> int:
    """floor(ρu): the bound every int8 noise value of this spec satisfies, in pixel levels."""
    return whole_levels(self.radius)

  @property
  def offset(self) -> Callable:
    """The offset a = offset(spec, logits_fn, u, y, keys): ``offset_fn``, else the method's
    (none where ρa = 0)."""
    if self.offset_fn is not None:
      return self.offset_fn
    return OFFSETS[self.parts.offset] if self.adversary.radius > 0 else no_offset

  @property
  def descends(self) -> bool:
    return self.parts.descends

  @property
  def next_class_target(self) -> bool:
    """TAP: descend the cross-entropy of the target class (y + 1) mod C."""
    return self.parts.target == "next_class"

  def __call__(self, logits_fn: LogitsFn, x: jax.Array, y: jax.Array, keys: jax.Array) -> jax.Array:
    """δ (fractions of [0, 1]) for normalised images x with true labels y: [`make_delta`][make_delta]."""
    return make_delta(self, logits_fn, x, y, keys)

  def noise(self, logits_fn: LogitsFn, x_uint8: jax.Array, y: jax.Array, keys: jax.Array) -> jax.Array:
    """The int8 noise (pixel levels, |noise| <= [`int8_bound`][int8_bound]) of a uint8 batch:
    ``quantize(self(logits_fn, normalize(x_uint8), y, keys), self.int8_bound)``."""
    checks.uint8_images(x_uint8, f"{self.method}.noise")
    return quantize(self(logits_fn, normalize(x_uint8), y, keys), self.int8_bound)


def _transform(spec: CraftSpec, x, aug_keys):
  """δ -> u = t(clip(x + δ)) for one augmentation draw per image: the differentiable part."""
  def to_u(delta):
    v = jnp.clip(x + delta, INPUT_LO, INPUT_HI)
    if spec.augment_pad >= 0:
      return augment(v, aug_keys, spec.augment_pad, crop_size=spec.crop_size)
    return model_view(v, spec.crop_size)
  return to_u


def expected_grad(spec: CraftSpec, logits_fn: LogitsFn, x: jax.Array, y: jax.Array,
                  delta: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean over J samples of the method's gradient estimate wrt δ (docs/method.md).

  The J draws of (t, offset key) are a ``jax.vmap`` over sample keys; the J·B transformed
  images then go through the network as ONE batch (folding J into the batch axis), which on
  XLA:CPU is ~4x faster than vmapping the network.

  Args:
    spec: the method.
    logits_fn: frozen eval-mode model, (B, H, W, C) -> (B, classes).
    x: (B, H, W, C) normalised clean images in [-0.5, 0.5].
    y: (B,) labels whose loss is descended.
    delta: (B, H, W, C) current δ (fractions of [0, 1]).
    keys: (B,) per-sample keys for this descent step; sample j of image b uses
      ``split(keys[b], J)[j]``.

  Returns:
    (grad (B, H, W, C), per-sample loss (B,) averaged over the J samples).

  Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from sem_jax import core
    >>> f = lambda v: v.reshape(len(v), -1)[:, :3]
    >>> x, y = jnp.zeros((2, 4, 4, 1)), jnp.array([0, 1])
    >>> keys = core.per_sample(jax.random.key(0), np.arange(2))
    >>> g, loss = core.expected_grad(core.em(radius=8, samples=1), f, x, y, jnp.zeros_like(x), keys)
    >>> g.shape, loss.shape
    ((2, 4, 4, 1), (2,))
  """
  keys = checks.batch("expected_grad", logits_fn, x, y, keys)
  chex.assert_equal_shape((x, delta))
  return _expected_grad(spec, logits_fn, x, y, delta, keys)


def _expected_grad(spec: CraftSpec, logits_fn: LogitsFn, x, y, delta, keys):
  J, B = spec.num_samples, x.shape[0]
  sample_keys = K.split_each(keys, J)                           # (J, B)
  k_aug, k_off = jax.vmap(lambda k: K.split_each(k, 2))(sample_keys).swapaxes(0, 1)  # (2,J,B)->
  to_u_all = lambda d: jax.vmap(lambda ka: _transform(spec, x, ka)(d))(k_aug)  # (J, B, ...)
  u, vjp = jax.vjp(to_u_all, delta)
  flat = lambda t: t.reshape((J * B,) + t.shape[2:])
  yj = jnp.tile(y, J)
  a = spec.offset(spec, logits_fn, flat(u), yj, flat(k_off))
  loss = spec.loss or attacks.ce

  def loss_fn(a_):
    per_sample = loss(logits_fn(a_), yj)
    return per_sample.sum(), per_sample

  g_a, per = jax.grad(loss_fn, has_aux=True)(a)   # one forward + backward pass over J·B images
  (g_delta,) = vjp(g_a.reshape(u.shape))          # sums the J chain-rule terms
  return g_delta / J, per.reshape(J, B).mean(0)


def expected_loss(spec: CraftSpec, logits_fn: LogitsFn, x: jax.Array, y: jax.Array,
                  delta: jax.Array, keys: jax.Array) -> jax.Array:
  """Per-sample loss the method minimises: mean over J of CE(f(offset(t(clip(x+δ))))); (B,).

  Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from sem_jax import core
    >>> f = lambda v: v.reshape(len(v), -1)[:, :3]
    >>> x, keys = jnp.zeros((2, 4, 4, 1)), core.per_sample(jax.random.key(0), np.arange(2))
    >>> spec = core.em(radius=8, samples=1)
    >>> core.expected_loss(spec, f, x, jnp.array([0, 1]), jnp.zeros_like(x), keys).shape
    (2,)
  """
  return expected_grad(spec, logits_fn, x, y, delta, keys)[1]


def craft(spec: CraftSpec, logits_fn: LogitsFn, x: jax.Array, labels: jax.Array,
          keys: jax.Array) -> jax.Array:
  """K sign-descent steps of the estimator on ``labels`` from U[-ρu, ρu] (or from 0).

  Args:
    spec: static hyperparameters.
    logits_fn: frozen eval-mode model, (B, H, W, C) -> (B, classes).
    x: (B, H, W, C) normalised clean images in [-0.5, 0.5].
    labels: (B,) the labels whose cross-entropy is descended (TAP: the target classes;
      [`make_delta`][make_delta] chooses them from the true labels).
    keys: (B,) per-sample keys; the result for one image depends only on its key,
      its image and label, and the model.

  Returns:
    δ (B, H, W, C) float32 in [-ρu, ρu] (fractions of [0, 1]).

  Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from sem_jax import core
    >>> f = lambda v: v.reshape(len(v), -1)[:, :3]
    >>> x, keys = jnp.zeros((2, 4, 4, 1)), core.per_sample(jax.random.key(0), np.arange(2))
    >>> delta = core.craft(core.em(radius=8, steps=2, step_size=4), f, x, jnp.array([0, 1]), keys)
    >>> bool(jnp.abs(delta).max() <= 8 / 255 + 1e-7)
    True
  """
  keys = checks.batch("craft", logits_fn, x, labels, keys)
  return _craft(spec, logits_fn, x, labels, keys)


def _craft(spec: CraftSpec, logits_fn: LogitsFn, x, labels, keys) -> jax.Array:
  x = jax.lax.stop_gradient(x)
  if spec.init is not None:
    delta0 = spec.init(K.fold_each(keys, 0), x, spec.radius_frac)
  elif spec.start == "zero":
    delta0 = jnp.zeros_like(x)
  else:
    delta0 = K.uniform_each(K.fold_each(keys, 0), x.shape[1:], spec.radius_frac)

  def descent(k, delta):
    g, _ = _expected_grad(spec, logits_fn, x, labels, delta, K.fold_each(keys, k + 1))
    return -g

  return attacks.iterate(descent, _project(spec, x, delta0), steps=spec.steps,
                         step_size=spec.step_frac, step=spec.step or attacks.linf_step,
                         project=lambda d: _project(spec, x, d), unroll=spec.unroll)


def _project(spec: CraftSpec, x, delta):
  """Onto |δ| <= ρu, and with ``spec.project`` also onto -0.5 <= x + δ <= 0.5 (or
  ``spec.projection``)."""
  if spec.projection is not None:
    return spec.projection(delta, x, spec.radius_frac)
  delta = jnp.clip(delta, -spec.radius_frac, spec.radius_frac)
  if spec.project:
    delta = jnp.clip(x + delta, INPUT_LO, INPUT_HI) - x
  return delta


def make_delta(spec: CraftSpec, logits_fn: LogitsFn, x: jax.Array, y: jax.Array,
               keys: jax.Array) -> jax.Array:
  """The method's δ (fractions of [0, 1]) for normalised images x with true labels y: the
  random baseline's U[-ρu, ρu], or [`craft`][craft] on y (TAP: on the target classes
  (y + 1) mod C, C the logits' width).

  Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from sem_jax import core
    >>> f = lambda x: x.reshape(len(x), -1)[:, :3]
    >>> spec = core.em(radius=8, steps=2, step_size=4, samples=1)
    >>> x = jnp.zeros((2, 4, 4, 1)); keys = core.per_sample(jax.random.key(0), np.arange(2))
    >>> delta = core.make_delta(spec, f, x, jnp.array([0, 2]), keys)
    >>> bool(jnp.abs(delta).max() <= 8 / 255 + 1e-7)
    True
  """
  keys = checks.batch(f"{spec.method} spec", logits_fn, x, y, keys)
  if not spec.descends:
    return random_delta(keys, x.shape[1:], spec.radius_frac)
  if spec.next_class_target:
    y = (y + 1) % jax.eval_shape(logits_fn, x[:1]).shape[-1]
  return _craft(spec, logits_fn, x, y, keys)


def quantize(delta: jax.Array, bound: int) -> jax.Array:
  """δ (fractions of [0, 1]) -> int8 noise in pixel levels: round(255 δ), clipped to ±bound
  (``spec.int8_bound``, floor(ρu)).

  Example:
    >>> import jax.numpy as jnp
    >>> from sem_jax import core
    >>> core.quantize(jnp.array([-9.4, 0.4, 7.6]) / 255, 8).tolist()
    [-8, 0, 8]
  """
  q = jnp.round(delta * LEVELS)
  return jnp.clip(q, -bound, bound).astype(jnp.int8)


def random_delta(keys: jax.Array, shape, radius_frac: float) -> jax.Array:
  """The random baseline: δ ~ U[-ρu, ρu] per sample (ρu and δ as fractions of [0, 1])."""
  return K.uniform_each(keys, shape, radius_frac)


def apply_noise(x_uint8: jax.Array, noise_int8: jax.Array) -> jax.Array:
  """Normalised protected image: ``normalize(protect(x, noise))``, exactly as published.

  Example:
    >>> import numpy as np
    >>> from sem_jax import core
    >>> core.apply_noise(np.array([[[[0], [250]]]], np.uint8), np.array([[[[-8], [8]]]], np.int8)).ravel().tolist()
    [-0.5, 0.5]
  """
  chex.assert_equal_shape((x_uint8, noise_int8))
  return normalize(protect(x_uint8, noise_int8))
