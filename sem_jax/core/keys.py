"""PRNG plumbing: every random draw is keyed by (seed, stream, step, sample index).

Keys are folded in per sample index so that a sample's randomness is the same
whatever batch it lands in and however the batch is split over devices.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.core import checks
from sem_jax.errors import SemJaxError

# Streams: independent sub-keys of the run's root key.
INIT, OUTER, FINAL, BATCH, EVAL, DROPOUT = 0, 1, 2, 3, 4, 5   # BATCH: batch-level draws (mixup,
                                                  # cutmix); DROPOUT: a training step's dropout masks;
                                                  # EVAL: attacks that measure robust accuracy
PURIFY = 6                                        # a victim's purifier (the dvae defense)
ECLIPSE = 7                                       # ECLIPSE's denoiser and its purification


def root_key(seed: int) -> jax.Array:
  return jax.random.key(seed)


def stream(root: jax.Array, which: int, step: int | jax.Array = 0) -> jax.Array:
  """Key of one stream at one step."""
  return jax.random.fold_in(jax.random.fold_in(root, which), step)


def per_sample(key: jax.Array, idx: jax.Array) -> jax.Array:
  """Per-sample keys (B,): ``fold_in(key, idx[b])`` for each image's dataset index.

  A sample's randomness then follows its index, whatever batch it lands in. ``idx`` must be
  the images' indices (distinct), not their labels: labels repeat, and images with one label
  would share their noise. Legacy ``jax.random.PRNGKey`` data is accepted and converted.

  Example:
    >>> import jax, numpy as np
    >>> from sem_jax import core
    >>> core.per_sample(jax.random.key(0), np.arange(4)).shape
    (4,)
  """
  key = checks.as_typed(key, "per_sample")
  if key.shape != ():
    raise SemJaxError(f"per_sample takes one root key, got keys of shape {key.shape}: "
                      "pass jax.random.key(seed)")
  shape, dtype = tuple(getattr(idx, "shape", ())), getattr(idx, "dtype", None)
  if len(shape) != 1 or dtype is None or not jnp.issubdtype(dtype, jnp.integer):
    raise SemJaxError(f"per_sample takes the images' dataset indices, integers of shape (B,), "
                      f"got shape {shape} dtype {dtype}: np.arange(len(x)) for a batch")
  if checks.concrete(idx) and len(np.unique(np.asarray(idx))) != shape[0]:
    raise SemJaxError("per_sample: indices repeat, so images would share their randomness; "
                      "pass each image's dataset index (np.arange(len(x))), not its label")
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, idx)


def fold_each(keys: jax.Array, data: int | jax.Array) -> jax.Array:
  """fold_in(k, data) for every key of a batch of keys (B,)."""
  return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, data)


def split_each(keys: jax.Array, num: int) -> jax.Array:
  """Split every key of (B,) into num: returns (num, B)."""
  return jnp.swapaxes(jax.vmap(lambda k: jax.random.split(k, num))(keys), 0, 1)


def uniform_each(keys: jax.Array, shape, radius) -> jax.Array:
  """Per-sample U[-radius, radius] of shape (B, *shape), one key per sample."""
  return jax.vmap(lambda k: jax.random.uniform(k, shape, minval=-radius, maxval=radius))(keys)
