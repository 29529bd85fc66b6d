"""Per-sample augmentation t ~ T: random horizontal flip, then pad-and-crop.

Works on normalised images (float, [-0.5, 0.5]). Padding uses ``pad_value``,
default -0.5: pixel level 0 (black), which is what zero padding of a uint8 or
[0, 1] image gives (torchvision's ``RandomCrop(padding=4)``). Every random
choice comes from the sample's own key, so a sample's augmentation does not
depend on its position in the batch or on how the batch is sharded.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

BLACK = -0.5  # pixel level 0 in normalised units


def augment_params(key: jax.Array, pad: int):
  """Draw one sample's (flip: bool[], dy: int32[], dx: int32[]); offsets in [0, 2*pad]."""
  k_flip, k_y, k_x = jax.random.split(key, 3)
  flip = jax.random.bernoulli(k_flip)
  dy = jax.random.randint(k_y, (), 0, 2 * pad + 1)
  dx = jax.random.randint(k_x, (), 0, 2 * pad + 1)
  return flip, dy, dx


def augment_one(x: jax.Array, key: jax.Array, pad: int, pad_value: float = BLACK) -> jax.Array:
  """Augment one image x: (H, W, C) -> (H, W, C). Differentiable in x."""
  flip, dy, dx = augment_params(key, pad)
  x = jnp.where(flip, x[:, ::-1, :], x)
  if pad == 0:
    return x
  xp = jnp.pad(x, ((pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
  return jax.lax.dynamic_slice(xp, (dy, dx, jnp.zeros_like(dy)), x.shape)


def augment(x: jax.Array, keys: jax.Array, pad: int, pad_value: float = BLACK) -> jax.Array:
  """Augment a batch x: (B, H, W, C) with per-sample keys: (B,). Pure and jittable."""
  return jax.vmap(augment_one, in_axes=(0, 0, None, None))(x, keys, pad, pad_value)
