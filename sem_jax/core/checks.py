"""Refusals at the public boundary of [`sem_jax.core`][sem_jax.core]: input the math would compute wrongly
stops here with a one-line [`SemJaxError`][sem_jax.errors.SemJaxError] that names the remedy.

The checks read only what is known while tracing (shapes, dtypes) unless a value is concrete
(a numpy array or an un-traced jax array): labels and image ranges are checked eagerly and
skipped under ``jax.jit``, where their values do not exist yet.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.errors import SemJaxError

# A normalised image x / 255 - 0.5 lies in [-0.5, 0.5]; one level of slack for rounding.
_NORMALISED_SLACK = 1.0 / 255.0


def concrete(x) -> bool:
  """True when x's values can be read now (not a tracer inside jit / vmap / grad)."""
  return not isinstance(x, jax.core.Tracer)


def levels(name: str, value: float, *, allow_zero: bool = False, fn: str = "") -> None:
  """Refuse a radius in pixel levels below one level (a fraction of [0, 1] passed where levels
  are meant) or a negative one."""
  where = f"{fn}: " if fn else ""
  if not np.isfinite(value) or value < 0:
    raise SemJaxError(f"{where}{name} must be a finite number of pixel levels >= 0, got {value}")
  if value == 0 and allow_zero:
    return
  if value < 1:
    raise SemJaxError(f"{where}{name}={value:g} is below one pixel level: did you pass a "
                      f"fraction? radii are pixel levels (0-255): {name}={value * 255:g}, "
                      f"not {value * 255:g}/255")


# The smallest step a method here uses is TAP's 0.064 levels; a step under 0.02 levels inside a
# radius of a level or more is a fraction passed for levels (1.6 / 255 = 0.0063).
MIN_STEP_LEVELS = 0.02


def travel(fn: str, steps: int, step_size: float, radius: float, *, step_name: str = "step_size",
           radius_name: str = "radius", max_ratio: float = 1.0) -> None:
  """Refuse a step larger than ``max_ratio`` times its radius (crafting: 1, the sign step
  saturates the box; PGD from a random start: 2, FGSM-RS's 1.25 ρa and the 2 ρa / steps rule
  at one step), or a step below ``MIN_STEP_LEVELS`` inside a radius of one level or more (a
  fraction passed where levels are meant)."""
  if step_size < 0 or not np.isfinite(step_size):
    raise SemJaxError(f"{fn}: {step_name} must be >= 0 pixel levels, got {step_size}")
  if radius > 0 and step_size > max_ratio * radius + 1e-9:
    most = f"{radius_name}" if max_ratio == 1 else f"{max_ratio:g} x {radius_name}"
    raise SemJaxError(f"{fn}: {step_name}={step_size:g} levels is larger than "
                      f"{radius_name}={radius:g} levels; a step may be at most {most}")
  if radius >= 1 and steps > 0 and 0 < step_size < MIN_STEP_LEVELS:
    raise SemJaxError(f"{fn}: {step_name}={step_size:.3g} levels is below {MIN_STEP_LEVELS} of a "
                      f"level: did you pass a fraction? steps are pixel levels: "
                      f"{step_name}={step_size * 255:.3g}")


def uint8_images(x, fn: str) -> None:
  """Refuse anything but a (B, H, W, C) uint8 batch of pixel levels."""
  dtype = getattr(x, "dtype", None)
  if dtype is None or np.dtype(dtype) != np.uint8:
    hint = (" (float images in [0, 1]: (x * 255).round().astype(np.uint8); images already "
            "normalised to [-0.5, 0.5] go to the spec itself, spec(logits_fn, x, y, keys))"
            if dtype is not None and jnp.issubdtype(dtype, jnp.floating) else "")
    raise SemJaxError(f"{fn} takes uint8 pixel levels (0-255), got dtype {dtype}{hint}")
  _rank4(x, fn)


def normalised_images(x, fn: str, check_range: bool = True) -> None:
  """Refuse a batch that is not float images normalised to [-0.5, 0.5] (``core.normalize``);
  ``check_range=False`` for inputs a defense may have moved out of that range (training)."""
  dtype = getattr(x, "dtype", None)
  if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
    also = " (or spec.noise(logits_fn, x_uint8, y, keys) for uint8 images)" if "spec" in fn else ""
    raise SemJaxError(f"{fn} takes normalised float images x / 255 - 0.5 in [-0.5, 0.5], got "
                      f"dtype {dtype}: pass core.normalize(x){also}")
  _rank4(x, fn)
  if check_range and concrete(x) and x.size:
    v = np.asarray(x)      # concrete: read on the host, also inside a trace that closes over x
    lo, hi = float(v.min()), float(v.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
      raise SemJaxError(f"{fn}: the images hold NaN or infinite values")
    if lo < -0.5 - _NORMALISED_SLACK or hi > 0.5 + _NORMALISED_SLACK:
      raise SemJaxError(f"{fn} takes images normalised to [-0.5, 0.5], got values in "
                        f"[{lo:.3g}, {hi:.3g}]: pass core.normalize(x_uint8) (x / 255 - 0.5)")


def _rank4(x, fn: str) -> None:
  if len(getattr(x, "shape", ())) != 4:
    raise SemJaxError(f"{fn} takes a batch of images (B, H, W, C), got shape "
                      f"{tuple(getattr(x, 'shape', ()))}: add a batch axis with x[None]")


def labels(y, batch: int, classes: int | None, fn: str) -> None:
  """Refuse labels that are not integers of shape (B,), or (when concrete) outside
  [0, classes)."""
  shape = tuple(getattr(y, "shape", ()))
  dtype = getattr(y, "dtype", None)
  if shape != (batch,):
    raise SemJaxError(f"{fn}: labels must have shape ({batch},), one per image, got {shape}")
  if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
    raise SemJaxError(f"{fn}: labels must be integer class indices, got dtype {dtype}")
  if classes is not None and concrete(y) and batch:
    v = np.asarray(y)
    lo, hi = int(v.min()), int(v.max())
    if lo < 0 or hi >= classes:
      raise SemJaxError(f"{fn}: labels must lie in [0, {classes}) for a model with {classes} "
                        f"outputs, got values in [{lo}, {hi}]")


def sample_keys(keys, batch: int, fn: str):
  """Per-sample typed PRNG keys of shape (B,). Legacy uint32 keys (``jax.random.PRNGKey``,
  shape (..., 2)) are accepted everywhere and converted; anything else is refused."""
  keys = as_typed(keys, fn)
  if keys.shape != (batch,):
    one = "one key for the whole batch" if keys.shape == () else f"keys of shape {keys.shape}"
    raise SemJaxError(f"{fn} needs one key per image, shape ({batch},), got {one}: make them "
                      "with core.per_sample(key, indices), indices each image's dataset index")
  return keys


def as_typed(keys, fn: str):
  """A typed key array from typed keys or legacy uint32 key data (last axis 2)."""
  dtype = getattr(keys, "dtype", None)
  if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
    return keys
  if dtype is not None and np.dtype(dtype) == np.uint32 and keys.shape[-1:] == (2,):
    return jax.random.wrap_key_data(keys)
  raise SemJaxError(f"{fn}: expected PRNG keys (jax.random.key(seed), or per-sample keys from "
                    f"core.per_sample), got dtype {dtype}")


def batch(fn: str, logits_fn, x, y, keys):
  """Validate a normalised batch, its labels against the model's outputs (when concrete) and
  its per-sample keys; returns the keys as a typed array."""
  normalised_images(x, fn)
  classes = None
  if concrete(y) and concrete(x) and x.shape[0]:
    classes = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct((1,) + x.shape[1:], x.dtype)).shape[-1]
  labels(y, x.shape[0], classes, fn)
  return sample_keys(keys, x.shape[0], fn)
