"""PRNG plumbing: every random draw is keyed by (seed, stream, step, sample index).

Keys are folded in per sample index so that a sample's randomness is the same
whatever batch it lands in and however the batch is split over devices.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

# Streams: independent sub-keys of the run's root key.
INIT, OUTER, FINAL, BATCH, EVAL, DROPOUT = 0, 1, 2, 3, 4, 5   # BATCH: batch-level draws (mixup,
                                                  # cutmix); DROPOUT: a training step's dropout masks;
                                                  # EVAL: attacks that measure robust accuracy
PURIFY = 6                                        # a victim's purifier (the dvae defense)


def root_key(seed: int) -> jax.Array:
  return jax.random.key(seed)


def stream(root: jax.Array, which: int, step: int | jax.Array = 0) -> jax.Array:
  """Key of one stream at one step."""
  return jax.random.fold_in(jax.random.fold_in(root, which), step)


def per_sample(key: jax.Array, idx: jax.Array) -> jax.Array:
  """Keys (B,) for samples with dataset indices idx: (B,) int32."""
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
