"""PGD (L∞ and L2) composed from parts: an initialiser, a step rule, a projection.

Units: inputs are normalised images in [-0.5, 0.5]; ``radius`` and
``step_size`` are fractions of the [0, 1] range (pixel levels / 255). For L2,
the radius is the L2 norm of the perturbation per image in those units.
The attacked model is whatever ``logits_fn`` is: callers pass the eval-mode
(running BatchNorm statistics) apply function.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from sem_jax import keys as K

LO, HI = -0.5, 0.5  # valid normalised pixel range


@dataclasses.dataclass(frozen=True)
class AttackSpec:
  """Static PGD hyperparameters; radius and step_size as fractions of [0, 1]."""
  radius: float
  steps: int
  step_size: float
  norm: str = "linf"           # linf | l2
  unroll: bool = False         # unroll the step loop (XLA:CPU speed)

  @classmethod
  def from_levels(cls, radius: float, steps: int, step_size: float, norm: str = "linf",
                  unroll: bool = False) -> "AttackSpec":
    """Build from pixel levels (8 means 8/255)."""
    return cls(radius / 255, steps, step_size / 255, norm, unroll)

  @property
  def active(self) -> bool:
    """False when the attack is the identity (radius 0 or no steps)."""
    return self.radius > 0 and self.steps > 0


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
  """Project onto the L∞ ball of the given radius around x, then onto [LO, HI]."""
  return jnp.clip(jnp.clip(x_adv, x - radius, x + radius), LO, HI)


def l2_project(x_adv: jax.Array, x: jax.Array, radius: float) -> jax.Array:
  """Project onto the per-sample L2 ball around x, then onto [LO, HI]."""
  d = x_adv - x
  scale = jnp.minimum(1.0, radius / jnp.maximum(_norms(d), 1e-12))
  return jnp.clip(x + d * scale, LO, HI)


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
  return step_size * jnp.sign(g)


def l2_step(g: jax.Array, step_size: float) -> jax.Array:
  return step_size * g / jnp.maximum(_norms(g), 1e-12)


PARTS = {"linf": (linf_init, linf_step, linf_project), "l2": (l2_init, l2_step, l2_project)}


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
  init, step, project = PARTS[norm]
  x = jax.lax.stop_gradient(x)
  grad_fn = jax.grad(lambda a: ce_sum(logits_fn(a), y))

  def body(_, a):
    return project(a + step(grad_fn(a), step_size), x, radius)

  a = jax.lax.fori_loop(0, steps, body, init(keys, x, radius), unroll=bool(unroll) if steps else 1)
  return jax.lax.stop_gradient(a)


def attack(logits_fn: Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array,
           keys: jax.Array, spec: AttackSpec) -> jax.Array:
  """:func:`pgd` with the hyperparameters of ``spec``."""
  return pgd(logits_fn, x, y, keys, radius=spec.radius, steps=spec.steps,
             step_size=spec.step_size, norm=spec.norm, unroll=spec.unroll)


def random_start(keys: jax.Array, x: jax.Array, spec: AttackSpec) -> jax.Array:
  """One uniform draw in the attack's ball around x (PGD's random start), projected to [LO, HI]."""
  return PARTS[spec.norm][0](keys, x, spec.radius)
