"""Neural tangent generalization attack (NTGA; Yuan & Wu, ICML 2021; docs/method.md, "The
field's other attacks"), with the kernel computed by JAX itself.

The surrogate is the infinitely wide fully connected ReLU network (``depth`` hidden layers,
weight variance ``w_var``, bias variance ``b_var``; NTGA and APBench: W_std² 1.76, b_std²
0.18). Its neural tangent kernel Θ has a closed form (Jacot et al. 2018; Arora et al. 2019),
and so does the network trained by gradient flow on the mean squared error for time t
(Lee et al. 2019):

    f_t(X*) = Θ(X*, X) Θ(X, X)⁻¹ (I - exp(-t Θ(X, X) / n)) Y.

NTGA perturbs a block X of n training images within the L∞ ball ρu so that this prediction
on clean target images X* (with labels Y*) is as wrong as possible: PGD ascent with sign
steps on the cross-entropy of softmax(f_t(X*)).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from sem_jax.core.units import fraction

W_VAR, B_VAR = 1.76, 0.18   # NTGA's (and APBench's) W_std², b_std²
DIAG_REG = 1e-4             # added to Θ(X, X)'s diagonal, relative to its mean diagonal


@dataclasses.dataclass(frozen=True)
class NTGASpec:
  """The attack (static); radius and step in pixel levels, as every spec of core."""
  radius: float               # ρu (L∞), pixel levels
  steps: int = 10             # PGD steps [10]
  step_size: float = 0.88     # pixel levels [1.1 ρu / 10]
  time: float = 64.0          # t of the gradient flow [64]
  depth: int = 3              # hidden ReLU layers
  w_var: float = W_VAR
  b_var: float = B_VAR


def _relu_moments(cov, var_a, var_b):
  """E[relu(u) relu(v)] and E[relu'(u) relu'(v)] for (u, v) centred Gaussian with variances
  ``var_a`` (rows), ``var_b`` (columns) and covariance ``cov`` (the arc-cosine kernels)."""
  norm = jnp.sqrt(var_a[:, None] * var_b[None, :])
  cos = jnp.clip(cov / norm, -1.0 + 1e-6, 1.0 - 1e-6)
  theta = jnp.arccos(cos)
  value = norm * (jnp.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi)
  slope = (math.pi - theta) / (2 * math.pi)
  return value, slope


def ntk(xa, xb, depth: int = 3, w_var: float = W_VAR, b_var: float = B_VAR):
  """(NNGP, NTK) of the infinitely wide ReLU network Dense -> (ReLU -> Dense) x depth between
  the rows of ``xa`` (n, d) and ``xb`` (m, d), in the NTK parameterisation."""
  d = xa.shape[-1]
  cov = w_var * xa @ xb.T / d + b_var
  va = w_var * jnp.sum(xa * xa, -1) / d + b_var
  vb = w_var * jnp.sum(xb * xb, -1) / d + b_var
  theta = cov
  for _ in range(depth):
    value, slope = _relu_moments(cov, va, vb)
    va_next = w_var * va / 2 + b_var      # E[relu(u)²] = var / 2
    vb_next = w_var * vb / 2 + b_var
    cov = w_var * value + b_var
    theta = w_var * theta * slope + cov
    va, vb = va_next, vb_next
  return cov, theta


def flow_prediction(x_train, y_train, x_test, time: float, depth: int = 3,
                    w_var: float = W_VAR, b_var: float = B_VAR):
  """f_t(x_test) of the kernel regression above (``y_train`` one-hot (n, C); inputs (·, d))."""
  n = x_train.shape[0]
  _, k_tt = ntk(x_train, x_train, depth, w_var, b_var)
  _, k_st = ntk(x_test, x_train, depth, w_var, b_var)
  k_tt = k_tt + DIAG_REG * jnp.mean(jnp.diag(k_tt)) * jnp.eye(n)
  flow = jnp.eye(n) - jax.scipy.linalg.expm(-time * k_tt / n)
  return k_st @ jnp.linalg.solve(k_tt, flow @ y_train)


def target_loss(x_train, y_train, x_test, y_test, spec: NTGASpec):
  """Mean cross-entropy of softmax(f_t(x_test)) against one-hot ``y_test``."""
  f = flow_prediction(x_train, y_train, x_test, spec.time, spec.depth, spec.w_var, spec.b_var)
  return -jnp.mean(jnp.sum(y_test * jax.nn.log_softmax(f), -1))


def attack_block(spec: NTGASpec, x, y_onehot, x_target, y_target):
  """δ (n, H, W, C) for the normalised block ``x`` (values in [-0.5, 0.5]): ``spec.steps``
  sign-ascent steps of ``spec.step_size`` levels on [`target_loss`][target_loss] from δ = 0, projected onto
  |δ| <= ρu and onto the valid range of x + δ."""
  shape = x.shape
  flat = lambda a: a.reshape(a.shape[0], -1)
  grad = jax.grad(lambda d: target_loss(flat(x + d), y_onehot, flat(x_target), y_target, spec))

  def step(_, delta):
    delta = delta + fraction(spec.step_size) * jnp.sign(grad(delta))
    delta = jnp.clip(delta, -fraction(spec.radius), fraction(spec.radius))
    return jnp.clip(x + delta, -0.5, 0.5) - x

  return jax.lax.fori_loop(0, spec.steps, step, jnp.zeros(shape, jnp.float32))
