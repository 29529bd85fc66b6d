"""Units, converted here and nowhere else (docs/method.md, section "Units").

- Images are uint8 pixel levels in [0, 255]; the model sees ``normalize(x) = x / 255 - 0.5``,
  so its inputs lie in ``[INPUT_LO, INPUT_HI] = [-0.5, 0.5]``.
- Radii and step sizes are quoted in pixel levels (8 means 8/255) by configs and by the
  constructors of :mod:`sem_jax.core.crafting.methods`; inside the math they are fractions of the
  [0, 1] range: :func:`fraction`.
- Stored noise is int8 pixel levels, ``|value| <= floor(ρu)`` (:func:`whole_levels`); the
  published image is ``protect(x, noise) = clip(x + noise, 0, 255)`` as uint8.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

LEVELS = 255.0               # pixel levels per unit of the [0, 1] range
INPUT_LO, INPUT_HI = -0.5, 0.5   # the model's input range: normalize(0) and normalize(255)


def fraction(levels: float) -> float:
  """A radius or step in pixel levels as a fraction of the [0, 1] range (``levels / 255``)."""
  return levels / LEVELS


def whole_levels(levels: float) -> int:
  """``floor(levels)``, the whole pixel levels a radius allows after rounding to int8: the
  bound every stored noise value satisfies. Rounded to 6 decimals first, so a radius that
  went through ``fraction`` and back (8/255 * 255 = 7.999...) keeps its whole value."""
  return int(math.floor(round(float(levels), 6)))


def normalize(x_uint8):
  """Pixel levels -> model input ``x / 255 - 0.5`` in [-0.5, 0.5], float32 (numpy or jax)."""
  return x_uint8.astype("float32") / 255.0 - 0.5


def clip_input(x):
  """Clip a model input to the valid range [INPUT_LO, INPUT_HI]."""
  return jnp.clip(x, INPUT_LO, INPUT_HI)


def protect(x_uint8, noise_int8):
  """The published image ``clip(x + noise, 0, 255)`` as uint8, for numpy or jax arrays of the
  same shape (the sum is taken in int16: no wrap-around)."""
  if tuple(x_uint8.shape) != tuple(noise_int8.shape):
    raise ValueError(f"image shape {tuple(x_uint8.shape)} != noise shape {tuple(noise_int8.shape)}")
  xp = jnp if isinstance(x_uint8, jax.Array) or isinstance(noise_int8, jax.Array) else np
  total = xp.asarray(x_uint8).astype(xp.int16) + xp.asarray(noise_int8).astype(xp.int16)
  return xp.clip(total, 0, 255).astype(xp.uint8)
