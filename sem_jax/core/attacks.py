"""Projected sign / normalised-gradient iterations, composed from parts: an initialiser, a step
rule and a projection (docs/method.md, "The surrogate adversary: PGD").

PGD ascends the cross-entropy inside the ρa ball; the defensive-noise crafting of
:mod:`sem_jax.core.crafting.noise` descends its estimator inside the ρu box. Both are
:func:`iterate` with their own direction, step rule and projection.

Units: inputs are normalised images in [-0.5, 0.5]; ``radius`` and ``step_size`` are
fractions of the [0, 1] range (pixel levels / 255). For L2, the radius is the L2 norm of the
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
from sem_jax.core.units import INPUT_HI, INPUT_LO, fraction

NORMS = ("linf", "l2")


@dataclasses.dataclass(frozen=True)
class AttackSpec:
  """Static PGD hyperparameters; radius and step_size as fractions of [0, 1]. Build it from
  pixel levels with :func:`pgd_attack` (or :meth:`from_levels`)."""
  radius: float
  steps: int
  step_size: float
  norm: str = "linf"           # linf | l2
  unroll: bool = False         # unroll the step loop (XLA:CPU speed)

  def __post_init__(self):
    if self.norm not in NORMS:
      raise ValueError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
    if not (self.radius >= 0 and self.step_size >= 0 and self.steps >= 0):
      raise ValueError(f"attack radius, step_size and steps must be >= 0, got {self}")

  @classmethod
  def from_levels(cls, radius: float, steps: int, step_size: float, norm: str = "linf",
                  unroll: bool = False) -> "AttackSpec":
    """Build from pixel levels (8 means 8/255)."""
    return cls(fraction(radius), steps, fraction(step_size), norm, unroll)

  @property
  def active(self) -> bool:
    """False when the attack is the identity (radius 0 or no steps)."""
    return self.radius > 0 and self.steps > 0

  def __call__(self, logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array,
               keys: jax.Array) -> jax.Array:
    """:func:`pgd` with these hyperparameters."""
    return pgd(logits_fn, x, y, keys, radius=self.radius, steps=self.steps,
               step_size=self.step_size, norm=self.norm, unroll=self.unroll)


NO_ATTACK = AttackSpec(0.0, 0, 0.0)


def pgd_attack(radius: float = 4.0, steps: int = 10, step_size: float = 0.8,
               norm: str = "linf", unroll: bool = False) -> AttackSpec:
  """PGD at ρa = ``radius`` pixel levels, ``steps`` steps of ``step_size`` levels (the paper's
  surrogate adversary: 4, 10, 0.8). Call the result as ``attack(logits_fn, x, y, keys)``."""
  return AttackSpec.from_levels(radius, steps, step_size, norm, unroll)


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
  descend); ``step`` a step rule (:func:`linf_step`, :func:`l2_step`); ``project`` the
  feasible set. ``unroll`` unrolls the loop (faster on XLA:CPU, slower to compile).
  """
  def body(i, z):
    return project(z + step(direction(i, z), step_size))
  return jax.lax.fori_loop(0, steps, body, z0, unroll=bool(unroll) if steps else 1)


def pgd(logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array, keys: jax.Array,
        *, radius: float, steps: int, step_size: float, norm: str = "linf",
        unroll: bool = False) -> jax.Array:
  """Maximise the cross-entropy of ``logits_fn`` around x by projected gradient ascent.

  Args:
    logits_fn: (B, H, W, C) -> (B, classes); the model with BatchNorm in eval mode.
    x: (B, H, W, C) normalised images in [-0.5, 0.5].
    y: (B,) int labels.
    keys: (B,) per-sample PRNG keys (random start).
    radius, step_size: fractions of [0, 1] (levels / 255).
    steps: number of ascent steps (python int; 0 returns the random start).
    norm: "linf" (sign steps) or "l2" (normalised-gradient steps).
    unroll: unroll the fori_loop (faster on XLA:CPU, slower to compile).
  Returns:
    x_adv (B, H, W, C), within the ball and [-0.5, 0.5]; gradients do not flow
    through it (it is an adversarial offset, treated as data).
  """
  chex.assert_rank(x, 4)
  chex.assert_shape(y, (x.shape[0],))
  init, step, project = PARTS[norm]
  x = jax.lax.stop_gradient(x)
  grad_fn = jax.grad(lambda a: ce_sum(logits_fn(a), y))
  a = iterate(lambda _, a: grad_fn(a), init(keys, x, radius), steps=steps, step_size=step_size,
              step=step, project=lambda a: project(a, x, radius), unroll=unroll)
  return jax.lax.stop_gradient(a)


def random_start(keys: jax.Array, x: jax.Array, spec: AttackSpec) -> jax.Array:
  """One uniform draw in the attack's ball around x (PGD's random start), in the input range."""
  return PARTS[spec.norm][0](keys, x, spec.radius)
