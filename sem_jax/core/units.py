"""Units, converted here and nowhere else (docs/method.md, section "Units").

- Images are uint8 pixel levels in [0, 255]; the model sees ``normalize(x) = x / 255 - 0.5``,
  so its inputs lie in ``[INPUT_LO, INPUT_HI] = [-0.5, 0.5]``.
- Radii and step sizes are quoted in pixel levels (8 means 8/255) by configs and by the
  constructors of [`sem_jax.core.crafting.methods`][sem_jax.core.crafting.methods]; inside the math they are fractions of the
  [0, 1] range: [`fraction`][fraction].
- Stored noise is int8 pixel levels, ``|value| <= floor(ρu)`` ([`whole_levels`][whole_levels]); the
  published image is ``protect(x, noise) = clip(x + noise, 0, 255)`` as uint8.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.errors import SemJaxError

LEVELS = 255.0               # pixel levels per unit of the [0, 1] range
INPUT_LO, INPUT_HI = -0.5, 0.5   # the model's input range: normalize(0) and normalize(255)


def fraction(levels: float) -> float:
  """A radius or step in pixel levels as a fraction of the [0, 1] range (``levels / 255``).

  Example:
    >>> from sem_jax import core
    >>> core.fraction(8) == 8 / 255
    True
  """
  return levels / LEVELS


class InLevels:
  """For specs that hold ``radius`` and ``step_size`` in pixel levels: the same quantities as
  fractions of the [0, 1] range, the unit of normalised images and of δ."""
  radius: float
  step_size: float

  @property
  def radius_frac(self) -> float:
    """The radius as a fraction of the [0, 1] range (``radius / 255``)."""
    return fraction(self.radius)

  @property
  def step_frac(self) -> float:
    """The step size as a fraction of the [0, 1] range (``step_size / 255``)."""
    return fraction(self.step_size)


def whole_levels(levels: float) -> int:
  """``floor(levels)``, the whole pixel levels a radius allows after rounding to int8: the
  bound every stored noise value satisfies. Rounded to 6 decimals first, so a radius that
  went through ``fraction`` and back (8/255 * 255 = 7.999...) keeps its whole value."""
  return int(math.floor(round(float(levels), 6)))


def normalize(x_uint8):
  """Pixel levels -> model input ``x / 255 - 0.5`` in [-0.5, 0.5], float32 (numpy or jax).

  Refuses float input: an image already in [0, 1] (or already normalised) would be divided by
  255 again and reach the model as black.

  Example:
    >>> import numpy as np
    >>> from sem_jax import core
    >>> core.normalize(np.array([0, 255], np.uint8)).tolist()
    [-0.5, 0.5]
  """
  dtype = getattr(x_uint8, "dtype", None)
  if dtype is None or np.dtype(dtype) not in (np.uint8, np.int16, np.int32):
    raise SemJaxError(f"normalize takes uint8 pixel levels (0-255), got dtype {dtype}; float "
                      "images in [0, 1]: (x * 255).round().astype(np.uint8)")
  return x_uint8.astype("float32") / 255.0 - 0.5


def clip_input(x):
  """Clip a model input to the valid range [INPUT_LO, INPUT_HI]."""
  return jnp.clip(x, INPUT_LO, INPUT_HI)


def protect(x_uint8, noise_int8):
  """The published image ``clip(x + noise, 0, 255)`` as uint8, for numpy or jax arrays of the
  same shape (the sum is taken in int16: no wrap-around).

  ``x_uint8`` must be uint8 pixel levels and the noise integer levels (int8, or int16 for
  the one-pixel budget); a float image is refused rather than truncated.

  Example:
    >>> import numpy as np
    >>> from sem_jax import core
    >>> core.protect(np.array([0, 250], np.uint8), np.array([-8, 8], np.int8)).tolist()
    [0, 255]
  """
  if tuple(x_uint8.shape) != tuple(noise_int8.shape):
    raise SemJaxError(f"protect: image shape {tuple(x_uint8.shape)} != noise shape "
                      f"{tuple(noise_int8.shape)}")
  if np.dtype(x_uint8.dtype) != np.uint8:
    raise SemJaxError(f"protect takes uint8 images (pixel levels 0-255), got {x_uint8.dtype}; "
                      "float images in [0, 1]: (x * 255).round().astype(np.uint8)")
  if np.dtype(noise_int8.dtype) not in (np.int8, np.int16):
    raise SemJaxError(f"protect takes int8 noise in pixel levels, got {noise_int8.dtype}; "
                      "from δ (fractions of [0, 1]) use core.quantize(delta, spec.int8_bound)")
  xp = jnp if isinstance(x_uint8, jax.Array) or isinstance(noise_int8, jax.Array) else np
  total = xp.asarray(x_uint8).astype(xp.int16) + xp.asarray(noise_int8).astype(xp.int16)
  return xp.clip(total, 0, 255).astype(xp.uint8)
