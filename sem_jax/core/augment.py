"""Per-sample augmentation t ~ T: random horizontal flip, then pad-and-crop (CIFAR-size data)
or a random-resized crop (the ImageNet subset: 256 px images, 224 px model input).

Works on normalised images (float, [-0.5, 0.5]). Padding uses ``pad_value``,
default ``INPUT_LO``: pixel level 0 (black), which is what zero padding of a uint8 or
[0, 1] image gives (torchvision's ``RandomCrop(padding=4)``). Every random
choice comes from the sample's own key, so a sample's augmentation does not
depend on its position in the batch or on how the batch is sharded.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from sem_jax.core.units import INPUT_LO, clip_input

BLACK = INPUT_LO  # pixel level 0 in normalised units


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


def augment(x: jax.Array, keys: jax.Array, pad: int, pad_value: float = BLACK,
            crop_size: int = 0) -> jax.Array:
  """Augment a batch x: (B, H, W, C) with per-sample keys: (B,). Pure and jittable.

  crop_size 0: flip + pad-and-crop (CIFAR-size data), same shape out.
  crop_size > 0: flip + random-resized crop to (B, crop_size, crop_size, C) (ImageNet subset).

  Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from sem_jax import core
    >>> keys = core.per_sample(jax.random.key(0), np.arange(2))
    >>> core.augment(jnp.zeros((2, 8, 8, 1)), keys, 4).shape
    (2, 8, 8, 1)
  """
  chex.assert_rank(x, 4)
  chex.assert_shape(keys, (x.shape[0],))
  if crop_size:
    return jax.vmap(random_resized_crop_one, in_axes=(0, 0, None))(x, keys, crop_size)
  return jax.vmap(augment_one, in_axes=(0, 0, None, None))(x, keys, pad, pad_value)


def random_resized_crop_one(x: jax.Array, key: jax.Array, size: int,
                            scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> jax.Array:
  """Flip, then a crop of area fraction U[scale] and aspect exp(U[log ratio]) (clipped to the
  image), resized bilinearly to (size, size). Differentiable in x.

  Unlike torchvision's 10 retries with a centre-crop fallback, an oversized box is clipped to
  the image: one draw, the same distribution of content, no data-dependent control flow.
  """
  h, w = x.shape[:2]
  k_flip, k_area, k_ratio, k_y, k_x = jax.random.split(key, 5)
  x = jnp.where(jax.random.bernoulli(k_flip), x[:, ::-1, :], x)
  area = jax.random.uniform(k_area, (), minval=scale[0], maxval=scale[1]) * h * w
  r = jnp.exp(jax.random.uniform(k_ratio, (), minval=jnp.log(ratio[0]), maxval=jnp.log(ratio[1])))
  cw = jnp.clip(jnp.sqrt(area * r), 1.0, w)
  ch = jnp.clip(jnp.sqrt(area / r), 1.0, h)
  y0 = jax.random.uniform(k_y, ()) * (h - ch)
  x0 = jax.random.uniform(k_x, ()) * (w - cw)
  sy, sx = size / ch, size / cw
  return jax.image.scale_and_translate(
      x, (size, size, x.shape[2]), (0, 1), jnp.stack([sy, sx]), jnp.stack([-y0 * sy, -x0 * sx]),
      method="linear", antialias=False)


def center_crop(x: jax.Array, size: int) -> jax.Array:
  """The central (size, size) window of a batch (B, H, W, C): the ImageNet test view."""
  h, w = x.shape[1:3]
  top, left = (h - size) // 2, (w - size) // 2
  return x[:, top:top + size, left:left + size]


def model_view(x: jax.Array, crop_size: int) -> jax.Array:
  """What the model sees at test time / without augmentation: x, or its centre crop."""
  return center_crop(x, crop_size) if crop_size else x


def train_view(x: jax.Array, keys: jax.Array, pad: int, crop_size: int) -> jax.Array:
  """What a model trains on: t(x) clipped to [-0.5, 0.5] (pad < 0: no augmentation, the
  test view)."""
  if pad < 0:
    return model_view(x, crop_size)
  return clip_input(augment(x, keys, pad, crop_size=crop_size))
