"""DeepConfuse (Feng, Cai & Zhou, "Learning to confuse: generating training time adversarial
data with auto-encoder", NeurIPS 2019; docs/method.md, "The field's other attacks").

A convolutional auto-encoder g proposes the noise ``δ = ρu tanh-output g(x)`` (fractions of
[0, 1], so |δ| <= ρu). Training alternates, on each batch of normalised images x:

1. the classifier f_θ takes one SGD step on its (augmented) poisoned view clip(x + δ);
2. the generator takes one Adam step that *raises* the clean loss CE(f_θ'(x), y) of the
   classifier one look-ahead step later, θ' = θ - η ∇θ CE(f_θ(clip(x + δ)), y): the gradient
   flows through the classifier's update into g (the paper's unrolled objective, one step
   deep).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from sem_jax.core import attacks, checks, train
from sem_jax.core.augment import train_view
from sem_jax.core.units import fraction
from sem_jax.errors import SemJaxError

DEPTH = 3   # stride-2 stages of the auto-encoder: image sides must be multiples of 2³


class NoiseGenerator(nn.Module):
  """x (B, H, W, C) -> values in [-1, 1] of the same shape: three stride-2 convolutions
  (16, 32, 64 channels, 4x4) and three transposed ones back, ReLU between, tanh out.

  With ``norm_out`` the last convolution's output is standardised per image and channel
  (a GroupNorm of one group per channel, learned scale and shift) before the tanh, so the
  output starts at unit scale whatever the initialisation (GUE; docs/method.md)."""
  channels: int
  width: int = 16
  norm_out: bool = False

  @nn.compact
  def __call__(self, x):
    for i in range(DEPTH):
      x = nn.relu(nn.Conv(self.width * 2 ** i, (4, 4), (2, 2), padding="SAME")(x))
    for i in reversed(range(DEPTH - 1)):
      x = nn.relu(nn.ConvTranspose(self.width * 2 ** i, (4, 4), (2, 2), padding="SAME")(x))
    x = nn.ConvTranspose(self.channels, (4, 4), (2, 2), padding="SAME")(x)
    if self.norm_out:
      x = nn.GroupNorm(num_groups=self.channels, epsilon=1e-5)(x)
    return jnp.tanh(x)


@flax.struct.dataclass
class DCState:
  """The attack's state (a pytree): the classifier's TrainState and the generator's
  parameters and Adam state."""
  classifier: train.TrainState
  gen_params: Any
  gen_opt: Any


@dataclasses.dataclass(frozen=True)
class DCSpec:
  radius: float             # ρu, pixel levels
  lookahead_lr: float       # η of the look-ahead step (the classifier's learning rate)
  augment_pad: int = 4      # the classifier's training view; < 0: none
  crop_size: int = 0

  def __post_init__(self):
    checks.levels("radius", self.radius, fn="DCSpec")
    if self.lookahead_lr < 0:
      raise SemJaxError(f"DCSpec: lookahead_lr must be >= 0, got {self.lookahead_lr:g}")


def noise_of(gen: NoiseGenerator, gen_params, spec: DCSpec, x):
  """δ = ρu g(x) for normalised x (fractions of [0, 1])."""
  return fraction(spec.radius) * gen.apply({"params": gen_params}, x)


def train_mode_ce(model, params, batch_stats, x, y):
  """Mean CE of the model in train mode (batch statistics; running ones left unchanged)."""
  vars_ = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
  out = model.apply(vars_, x, **train.mode_switch(model)(True),
                    mutable=["batch_stats"] if batch_stats else False)
  return attacks.ce(out[0] if batch_stats else out, y).mean()


def step(model, tx, gen: NoiseGenerator, gen_tx, spec: DCSpec, state: DCState, x, y, keys):
  """One alternating step on normalised ``x`` (B, H, W, C), labels ``y``, per-sample
  augmentation ``keys``. Returns (new state, metrics: the classifier's loss and accuracy on
  the poisoned view, and the generator's objective ``clean_loss`` after the look-ahead)."""
  cls = state.classifier
  poisoned = jnp.clip(x + noise_of(gen, state.gen_params, spec, x), -0.5, 0.5)
  view = train_view(poisoned, keys, spec.augment_pad, spec.crop_size)
  cls, metrics = train.update(model, tx, cls, view, y)

  def objective(gen_params):
    xp = jnp.clip(x + noise_of(gen, gen_params, spec, x), -0.5, 0.5)
    g = jax.grad(lambda p: train_mode_ce(model, p, cls.batch_stats, xp, y))(cls.params)
    ahead = jax.tree_util.tree_map(lambda p, d: p - spec.lookahead_lr * d, cls.params, g)
    return train_mode_ce(model, ahead, cls.batch_stats, x, y)

  clean_loss, g_gen = jax.value_and_grad(objective)(state.gen_params)
  updates, gen_opt = gen_tx.update(jax.tree_util.tree_map(jnp.negative, g_gen), state.gen_opt,
                                   state.gen_params)
  gen_params = optax.apply_updates(state.gen_params, updates)
  return DCState(cls, gen_params, gen_opt), {**metrics, "clean_loss": clean_loss}

