"""Data order: which dataset indices each step reads, as pure functions of (seed, step).

The generation and victim loops read batches of ``batch_indices``; the final pass and
the evaluations read ``padded_batches`` (every index once, in order). Nothing here
touches images: each process then reads only its own rows (``sharding.gather_batch``).
"""
from __future__ import annotations

import functools
import math

import numpy as np

SUBSET_SEED = 0x9A27   # the protected subset of partial protection


def batch_indices(seed: int, step: int, num: int, batch_size: int) -> np.ndarray:
  """Dataset indices of the batch at ``step``: (B,) int32.

  The data stream is the concatenation of per-epoch permutations of range(num),
  epoch e shuffled by numpy PCG64 seeded with (seed, e). Batches are consecutive
  slices of that stream, so the order is a pure function of (seed, step): the
  data-order state of a checkpoint is its step.
  """
  pos = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
  out = np.empty(batch_size, np.int32)
  for e in np.unique(pos // num):
    perm = epoch_permutation(seed, int(e), num)
    sel = (pos // num) == e
    out[sel] = perm[pos[sel] % num]
  return out


@functools.lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, num: int) -> np.ndarray:
  """The order of epoch ``epoch``: a permutation of range(num), int32."""
  return np.random.default_rng([seed, epoch, 0x5E3]).permutation(num).astype(np.int32)


def padded_rows(num: int, batch_size: int) -> int:
  """Rows of the noise table: num rounded up to a multiple of the global batch."""
  return math.ceil(num / batch_size) * batch_size


def padded_batches(num: int, batch_size: int):
  """Yield (idx (B,), valid count) covering range(num) in order; the last batch is padded
  by repeating its last index (the padded entries are marked invalid)."""
  for start in range(0, num, batch_size):
    idx = np.arange(start, min(start + batch_size, num), dtype=np.int32)
    valid = len(idx)
    if valid < batch_size:
      idx = np.concatenate([idx, np.full(batch_size - valid, idx[-1], np.int32)])
    yield idx, valid


def protected_indices(seed: int, num: int, fraction: float) -> np.ndarray:
  """Sorted dataset indices that carry noise: the first round(p N) of a (seed)-permutation."""
  perm = np.random.default_rng([seed, SUBSET_SEED]).permutation(num)
  return np.sort(perm[:int(round(fraction * num))]).astype(np.int64)
