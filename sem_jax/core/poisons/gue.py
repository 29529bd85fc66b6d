"""Game-theoretic unlearnable examples (GUE; Liu et al., "Game-Theoretic Unlearnable Example
Generator", AAAI 2024; read from hong-xian/gue, ``gue.py``; docs/method.md).

A Stackelberg game between a noise generator a (the leader's variable, δ = ρu g_a(x)) and a
classifier θ (the follower), solved per batch with BOME's first-order update:

- g(a, θ) = CE(f_θ(clip(x + δ_a(x))), y), the follower's loss on the poisoned batch;
- f(θ) = mean over the batch of max over the wrong classes k of CE(f_θ(x), k): the leader
  wants a follower that fails on the clean batch;
- θ' : ``inner_steps`` Adam steps (``inner_lr``) on g(a, ·) from θ, the follower's
  approximate best response; q(a, θ) = g(a, θ) − g(a, θ');
- λ = relu((η ‖∇q‖² − ⟨∇θ f, ∇θ q⟩) / ‖∇q‖²), ∇q over both (a, θ);
- a takes a step of λ ∇a q, θ a step of ∇θ f + λ ∇θ q (each with its optimizer).

The classifier runs in train mode throughout (batch statistics), as the release's does; its
running BatchNorm statistics are not tracked (GUE never evaluates it). The generator
([`generator`][sem_jax.core.poisons.gue.generator]) is DeepConfuse's auto-encoder, not the
release's UNet (64 to 512 channels), which the CPU protocol cannot afford, with the UNet's
output normalisation kept: the last convolution's output is standardised before the tanh.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from sem_jax.core import checks, train
from sem_jax.core.poisons import deepconfuse as DC
from sem_jax.errors import SemJaxError


@dataclasses.dataclass(frozen=True)
class GUESpec:
  radius: float                 # ρu, pixel levels
  eta: float = 1.5              # η of BOME's λ [1.5]
  inner_steps: int = 10         # Adam steps of the follower's best response [10]
  inner_lr: float = 1e-4        # their learning rate [1e-4]
  unroll: bool = False          # the best response as straight-line steps (XLA:CPU runs
                                # convolutions inside a while loop ~8x slower)

  def __post_init__(self):
    checks.levels("radius", self.radius, fn="GUESpec")
    if self.radius > 255:
      raise SemJaxError(f"GUESpec: radius={self.radius:g} levels is above 255")
    if not (self.eta > 0 and self.inner_lr > 0 and self.inner_steps >= 1):
      raise SemJaxError(f"GUESpec: needs eta > 0, inner_steps >= 1 and inner_lr > 0, got "
                        f"eta={self.eta:g}, inner_steps={self.inner_steps}, "
                        f"inner_lr={self.inner_lr:g}")


def generator(channels: int) -> DC.NoiseGenerator:
  """GUE's generator g: DeepConfuse's auto-encoder with its output standardised per image and
  channel before the tanh. The release's UNet ends in a BatchNorm before its tanh, so its
  g(x) starts at unit scale (mean |g| about 0.46, nearly 4 levels at ρu 8); without it the
  auto-encoder starts at mean |g| 0.003, and the game's steps, whose gradient carries the
  factor ρu, leave the noise under half a level (docs/method.md)."""
  return DC.NoiseGenerator(channels, norm_out=True)


def max_wrong_ce(logits: jax.Array, y: jax.Array) -> jax.Array:
  """(B,) the largest cross-entropy over the wrong classes: −min over k ≠ y of log p_k."""
  logp = jax.nn.log_softmax(logits)
  return -jnp.min(jnp.where(jax.nn.one_hot(y, logits.shape[-1], dtype=bool), jnp.inf, logp), -1)


def _train_logits(model, params, batch_stats, x):
  vars_ = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
  out = model.apply(vars_, x, **train.mode_switch(model)(True),
                    mutable=["batch_stats"] if batch_stats else False)
  return out[0] if batch_stats else out


def _sq(tree) -> jax.Array:
  return sum(jnp.sum(jnp.square(v)) for v in jax.tree_util.tree_leaves(tree))


def _dot(a, b) -> jax.Array:
  return sum(jnp.sum(u * v) for u, v in zip(jax.tree_util.tree_leaves(a),
                                            jax.tree_util.tree_leaves(b)))


def step(model, tx, gen: DC.NoiseGenerator, gen_tx, spec: GUESpec, state: DC.DCState, x, y):
  """One BOME step on normalised ``x`` (B, H, W, C) and labels ``y``. Returns (new state,
  metrics: ``loss`` g(a, θ) and the classifier's ``accuracy`` on the poisoned batch,
  ``clean_loss`` f(θ), ``lambda``)."""
  checks.normalised_images(x, "gue.step")
  classes = None
  if checks.concrete(y) and checks.concrete(x) and x.shape[0]:
    classes = jax.eval_shape(lambda v: _train_logits(model, state.classifier.params,
                                                     state.classifier.batch_stats, v),
                             jax.ShapeDtypeStruct((1,) + x.shape[1:], x.dtype)).shape[-1]
  checks.labels(y, x.shape[0], classes, "gue.step")
  cls = state.classifier
  bs = cls.batch_stats
  dc_spec = DC.DCSpec(spec.radius, 0.0)

  def g(gen_params, params):
    xp = jnp.clip(x + DC.noise_of(gen, gen_params, dc_spec, x), -0.5, 0.5)
    return DC.train_mode_ce(model, params, bs, xp, y)

  inner_tx = optax.adam(spec.inner_lr)

  def inner(_, carry):
    p, o = carry
    u, o = inner_tx.update(jax.grad(g, argnums=1)(state.gen_params, p), o, p)
    return optax.apply_updates(p, u), o

  carry = (cls.params, inner_tx.init(cls.params))
  if spec.unroll:
    for i in range(spec.inner_steps):
      carry = inner(i, carry)
  else:
    carry = jax.lax.fori_loop(0, spec.inner_steps, inner, carry)
  best = jax.lax.stop_gradient(carry[0])
  f = lambda p: max_wrong_ce(_train_logits(model, p, bs, x), y).mean()
  clean_loss, grad_f = jax.value_and_grad(f)(cls.params)
  poison_loss, (q_a, q_theta) = jax.value_and_grad(
      lambda a, p: g(a, p), argnums=(0, 1))(state.gen_params, cls.params)
  q_a = jax.tree_util.tree_map(jnp.subtract, q_a,
                               jax.grad(g)(state.gen_params, best))   # ∇a of g(a, θ')
  norm_q = _sq(q_a) + _sq(q_theta)
  lam = jax.nn.relu((spec.eta * norm_q - _dot(grad_f, q_theta)) / (norm_q + 1e-8))
  updates, gen_opt = gen_tx.update(jax.tree_util.tree_map(lambda v: lam * v, q_a),
                                   state.gen_opt, state.gen_params)
  gen_params = optax.apply_updates(state.gen_params, updates)
  cls_grad = jax.tree_util.tree_map(lambda a, b: a + lam * b, grad_f, q_theta)
  updates, opt_state = tx.update(cls_grad, cls.opt_state, cls.params)
  cls = cls.replace(step=cls.step + 1, params=optax.apply_updates(cls.params, updates),
                    opt_state=opt_state)
  xp = jnp.clip(x + DC.noise_of(gen, state.gen_params, dc_spec, x), -0.5, 0.5)
  accuracy = jnp.mean(jnp.argmax(_train_logits(model, state.classifier.params, bs, xp), -1) == y)
  return DC.DCState(cls, gen_params, gen_opt), {
      "loss": poison_loss, "accuracy": accuracy, "clean_loss": clean_loss, "lambda": lam}
