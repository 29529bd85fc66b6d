"""Projected sign / normalised-gradient iterations, composed from parts: an initialiser, a step
rule and a projection (docs/method.md, "The surrogate adversary: PGD").

PGD ascends the cross-entropy inside the ρa ball; the defensive-noise crafting of
[`sem_jax.core.crafting.noise`][sem_jax.core.crafting.noise] descends its estimator inside the ρu box. Both are
[`iterate`][iterate] with their own direction, step rule and projection.

Units: inputs are normalised images in [-0.5, 0.5]; ``radius`` and ``step_size`` are pixel
levels everywhere in the public API ([`Levels`][Levels]; 4 means 4/255), converted to fractions of
the [0, 1] range inside (``radius_frac``). For L2, the radius is the L2 norm of the
perturbation per image in those units. The attacked model is whatever ``logits_fn`` is:
callers pass the eval-mode (running BatchNorm statistics) apply function.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import chex
import jax
import jax.numpy as jnp
import optax

from sem_jax.core import keys as K
from sem_jax.core import checks
from sem_jax.core.units import INPUT_HI, INPUT_LO, InLevels
from sem_jax.errors import SemJaxError

NORMS = ("linf", "l2")


Levels = float
"""A radius or step size in pixel levels of the [0, 255] range (8 means 8/255 of the image
range); for the L2 norm, the per-image L2 norm in the same units."""

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class AttackSpec(InLevels):
  """PGD's hyperparameters, in pixel levels; calling it runs [`pgd`][pgd].

  The defaults are the paper's surrogate adversary (ρa 4 levels, 10 steps of 0.8). ``loss``,
  ``init``, ``step`` and ``project`` replace PGD's parts (cross-entropy, uniform start, sign
  step, projection onto the ball and the input range) with your own callables, as in
  [`pgd`][pgd]. A radius below one level, or a step larger than twice the radius, is refused.

  Attributes:
    radius: ρa in pixel levels (an L2 norm per image for ``norm="l2"``); 0: no attack.
    steps: ascent steps.
    step_size: pixel levels per step, at most twice ``radius``.
    norm: "linf" (sign steps, box) or "l2" (normalised-gradient steps, ball).
    unroll: unroll the step loop (faster on XLA:CPU, slower to compile).
    loss: ``(logits, labels) -> (B,)`` per-sample loss to ascend; None: cross-entropy.
    init: ``(keys, x, radius_frac) -> x0``; None: uniform in the ball.
    step: ``(g, step_frac) -> increment``; None: the norm's steepest-ascent step.
    project: ``(z, x, radius_frac) -> z``; None: onto the ball, then the input range.

  Example:
    >>> from sem_jax import core
    >>> attack = core.AttackSpec(radius=4, steps=10, step_size=0.8)
    >>> attack.active, round(attack.radius_frac * 255, 6)
    (True, 4.0)
  """
  radius: Levels = 4.0         # ρa in pixel levels; 0: no attack
  steps: int = 10
  step_size: Levels = 0.8      # pixel levels per step
  norm: str = "linf"           # linf | l2
  unroll: bool = False         # unroll the step loop (XLA:CPU speed)
  loss: LossFn | None = None   # (logits, labels) -> per-sample loss to ascend; None: cross-entropy
  init: Callable | None = None     # (keys, x, radius_frac) -> start point; None: uniform in the ball
  step: Callable | None = None     # (g, step_frac) -> increment; None: the norm's steepest ascent
  project: Callable | None = None  # (z, x, radius_frac) -> feasible z; None: ball, then input range

  def __post_init__(self):
    if self.norm not in NORMS:
      raise SemJaxError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
    if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 0:
      raise SemJaxError(f"AttackSpec: steps must be a whole number >= 0, got {self.steps}")
    checks.levels("radius", self.radius, allow_zero=True, fn="AttackSpec")
    if self.radius > 0:
      checks.travel("AttackSpec", self.steps, self.step_size, self.radius, max_ratio=2.0)

  @property
  def active(self) -> bool:
    """False when the attack is the identity (radius 0 or no steps)."""
    return self.radius > 0 and self.steps > 0

  def parts(self) -> tuple[Callable, Callable, Callable]:
    """(init, step, project): the spec's own callables, else the norm's."""
    init, step, project = PARTS[self.norm]
    return self.init or init, self.step or step, self.project or project

  def __call__(self, logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array,
               keys: jax.Array) -> jax.Array:
    """[`pgd`][pgd] with these hyperparameters: x_adv for normalised images x."""
    return _pgd(self, logits_fn, x, y, keys)


NO_ATTACK = AttackSpec(0.0, 0, 0.0)


def ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-sample cross-entropy (B,) in float32."""
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def ce_sum(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Sum over the batch of per-sample cross-entropy (so per-sample gradients do not depend on B)."""
  return ce(logits, labels).sum()


def _norms(v: jax.Array) -> jax.Array:
  """Per-sample L2 norm, broadcastable to v: (B, 1, 1, 1)."""
  return jnp.sqrt(jnp.sum(jnp.square(v), axis=tuple(range(1, v.ndim)), keepdims=True))


def linf_project(x_adv: jax.Array, x: jax.Array, radius: float) -> jax.Array:
  """Project onto the L∞ ball of the given radius around x, then onto the input range."""
  return jnp.clip(jnp.clip(x_adv, x - radius, x + radius), INPUT_LO, INPUT_HI)


def l2_project(x_adv: jax.Array, x: jax.Array, radius: float) -> jax.Array:
  """Project onto the per-sample L2 ball around x, then onto the input range."""
  d = x_adv - x
  scale = jnp.minimum(1.0, radius / jnp.maximum(_norms(d), 1e-12))
  return jnp.clip(x + d * scale, INPUT_LO, INPUT_HI)


def linf_init(keys: jax.Array, x: jax.Array, radius: float) -> jax.Array:
  """Random start: x + U[-radius, radius] per pixel (per-sample keys (B,))."""
  return linf_project(x + K.uniform_each(keys, x.shape[1:], radius), x, radius)


def l2_init(keys: jax.Array, x: jax.Array, radius: float) -> jax.Array:
  """Random start uniform in the L2 ball: Gaussian direction, radius * U^(1/d)."""
  def one(k):
    kd, kr = jax.random.split(k)
    d = jax.random.normal(kd, x.shape[1:])
    r = radius * jax.random.uniform(kr) ** (1.0 / d.size)
    return d / jnp.maximum(jnp.linalg.norm(d), 1e-12) * r
  return l2_project(x + jax.vmap(one)(keys), x, radius)


def linf_step(g: jax.Array, step_size: float) -> jax.Array:
  """The L∞ steepest-ascent step along g: ``step_size * sign(g)``."""
  return step_size * jnp.sign(g)


def l2_step(g: jax.Array, step_size: float) -> jax.Array:
  """The L2 steepest-ascent step along g: ``step_size * g / ||g||`` per sample."""
  return step_size * g / jnp.maximum(_norms(g), 1e-12)


PARTS = {"linf": (linf_init, linf_step, linf_project), "l2": (l2_init, l2_step, l2_project)}


def iterate(direction: Callable[[jax.Array, jax.Array], jax.Array], z0: jax.Array, *,
            steps: int, step_size: float, step: Callable = linf_step,
            project: Callable[[jax.Array], jax.Array] = lambda z: z,
            unroll: bool = False) -> jax.Array:
  """``steps`` times ``z <- project(z + step(direction(i, z), step_size))`` in a fori_loop.

  ``direction(i, z)`` is the ascent direction at iteration i (pass the negative gradient to
  descend); ``step`` a step rule ([`linf_step`][linf_step], [`l2_step`][l2_step]); ``project`` the
  feasible set. ``unroll`` unrolls the loop (faster on XLA:CPU, slower to compile).
  """
  def body(i, z):
    return project(z + step(direction(i, z), step_size))
  return jax.lax.fori_loop(0, steps, body, z0, unroll=bool(unroll) if steps else 1)


def pgd(logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array, keys: jax.Array,
        *, radius: Levels = 4.0, steps: int = 10, step_size: Levels = 0.8, norm: str = "linf",
        unroll: bool = False, loss: LossFn | None = None, init: Callable | None = None,
        step: Callable | None = None, project: Callable | None = None) -> jax.Array:
  """Maximise a loss of ``logits_fn`` around x by projected gradient ascent (radii in levels).

  Args:
    logits_fn: (B, H, W, C) -> (B, classes); the model with BatchNorm in eval mode.
    x: (B, H, W, C) normalised images in [-0.5, 0.5] (``core.normalize``).
    y: (B,) int labels in [0, classes).
    keys: (B,) per-sample PRNG keys (random start), from ``core.per_sample``.
    radius: ρa in pixel levels (the paper's 4 means 4/255); 0 returns x.
    steps: number of ascent steps (python int; 0 returns the random start).
    step_size: pixel levels per step; at most ``radius``.
    norm: "linf" (sign steps) or "l2" (normalised-gradient steps, radius an L2 norm).
    unroll: unroll the fori_loop (faster on XLA:CPU, slower to compile).
    loss: (logits, labels) -> per-sample loss to ascend; default cross-entropy.
    init: replaces the random start ``init(keys, x, r)`` (r the radius as a fraction of [0, 1]).
    step: replaces the step rule ``step(g, s)`` (s the step as a fraction of [0, 1]).
    project: replaces the projection ``project(z, x, r)`` onto the ball and the input range.

  Returns:
    x_adv (B, H, W, C), within the ball and [-0.5, 0.5]; gradients do not flow
    through it (it is an adversarial offset, treated as data).

  Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from sem_jax import core
    >>> f = lambda x: x.reshape(len(x), -1)[:, :3]          # any logits function
    >>> x = jnp.zeros((2, 4, 4, 1)); keys = core.per_sample(jax.random.key(0), np.arange(2))
    >>> x_adv = core.pgd(f, x, jnp.array([0, 1]), keys, radius=4, steps=3, step_size=2)
    >>> bool(jnp.abs(x_adv - x).max() <= 4 / 255 + 1e-7)
    True
  """
  spec = AttackSpec(radius, steps, step_size, norm, unroll, loss, init, step, project)
  checks.normalised_images(x, "pgd")
  checks.labels(y, x.shape[0], None, "pgd")
  keys = checks.sample_keys(keys, x.shape[0], "pgd")
  return _pgd(spec, logits_fn, x, y, keys)


def _pgd(spec: AttackSpec, logits_fn, x, y, keys) -> jax.Array:
  """PGD of an already validated spec (fractions derived from its levels)."""
  chex.assert_rank(x, 4)
  chex.assert_shape(y, (x.shape[0],))
  if spec.radius == 0:
    return jax.lax.stop_gradient(x)
  init, step, project = spec.parts()
  radius = spec.radius_frac
  loss = spec.loss or ce
  x = jax.lax.stop_gradient(x)
  grad_fn = jax.grad(lambda a: loss(logits_fn(a), y).sum())
  a = iterate(lambda _, a: grad_fn(a), init(keys, x, radius), steps=spec.steps,
              step_size=spec.step_frac, step=step, project=lambda a: project(a, x, radius),
              unroll=spec.unroll)
  return jax.lax.stop_gradient(a)


def random_start(keys: jax.Array, x: jax.Array, spec: AttackSpec) -> jax.Array:
  """One draw of the attack's start in its ball around x (uniform unless ``spec.init``)."""
  return spec.parts()[0](keys, x, spec.radius_frac)
