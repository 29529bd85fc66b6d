"""Row tables that are read, not held: the ImageNet subset's images and noise are ~25 GB each.

A *row table* is anything with ``shape``, ``dtype``, ``len()`` and numpy-style row
indexing (an int, a slice or an int array): a numpy array, a ``np.memmap`` (the prepared
cache, a noise.npy), or the lazy views here. ``sharding.gather_batch`` indexes only the
rows a process's devices need, so a lazy table is read only where it is used.

- [`Concat`][Concat]: noise shards, one after another, as one table.
- [`Protected`][Protected]: the published image ``clip(x + noise)`` (on a subset of rows, then
  any per-image preprocessing), computed per read.
- [`Subset`][Subset]: the rows ``rows`` of a table, renumbered 0..len-1.
- [`chunks`][chunks]: walk a table in row blocks, so a pass over it needs one block's memory.
"""
from __future__ import annotations

import numpy as np

from sem_jax.core.units import protect

CHUNK = 1024              # at most this many rows per block when walking a table
BLOCK_BYTES = 32 << 20    # and at most ~32 MiB of rows (170 ImageNet images at 256x256x3)


def block_rows(table) -> int:
  """Rows per block for walking ``table`` (anything with shape and dtype): CHUNK, fewer where
  rows are large."""
  row = int(np.prod(table.shape[1:], dtype=np.int64)) * np.dtype(table.dtype).itemsize
  return max(1, min(CHUNK, BLOCK_BYTES // max(row, 1)))


def _positions(key, n: int) -> np.ndarray:
  """Row indexing -> an int64 index array (negative ints wrap; out of range raises)."""
  if isinstance(key, slice):
    return np.arange(n, dtype=np.int64)[key]
  idx = np.asarray(key)
  if idx.dtype == bool:
    return np.flatnonzero(idx)
  idx = idx.astype(np.int64)
  if ((idx < -n) | (idx >= n)).any():
    raise IndexError(f"row index out of range for a table of {n} rows")
  return np.where(idx < 0, idx + n, idx)


class _Lazy:
  """Shared row-table behaviour: shape/dtype/len, int or array indexing, ``np.asarray``."""
  shape: tuple
  dtype: np.dtype

  def __len__(self) -> int:
    return int(self.shape[0])

  @property
  def ndim(self) -> int:
    return len(self.shape)

  @property
  def nbytes(self) -> int:
    return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

  def __getitem__(self, key):
    if isinstance(key, (int, np.integer)):
      return self._rows(_positions(np.array([key]), len(self)))[0]
    return self._rows(_positions(key, len(self)))

  def astype(self, dtype) -> np.ndarray:
    return self[:].astype(dtype)

  def __array__(self, dtype=None, copy=None):
    out = self[:]
    return out if dtype is None else out.astype(dtype)

  def _rows(self, idx: np.ndarray) -> np.ndarray:
    raise NotImplementedError


class Concat(_Lazy):
  """Tables stacked along rows (e.g. memory-mapped noise shards)."""

  def __init__(self, parts, dtype=None):
    self.parts = list(parts)
    self.starts = np.cumsum([0] + [len(p) for p in self.parts])
    inner = {tuple(p.shape[1:]) for p in self.parts}
    if len(inner) > 1:
      raise ValueError(f"parts differ in row shape: {sorted(inner)}")
    self.shape = (int(self.starts[-1]), *(inner.pop() if inner else ()))
    self.dtype = np.dtype(dtype or (self.parts[0].dtype if self.parts else np.int8))

  def _rows(self, idx):
    out = np.empty((len(idx), *self.shape[1:]), self.dtype)
    which = np.searchsorted(self.starts, idx, side="right") - 1
    for p in np.unique(which):
      sel = which == p
      out[sel] = self.parts[p][idx[sel] - self.starts[p]]
    return out


class Protected(_Lazy):
  """Row i = ``clip(images[i] + noise[i], 0, 255)`` where ``mask[i]`` (all rows if None),
  else images[i]; then ``post`` (a per-image uint8 -> uint8 function of a row block)."""

  def __init__(self, images, noise=None, mask=None, post=None):
    if noise is not None and tuple(images.shape) != tuple(noise.shape):
      raise ValueError(f"image shape {tuple(images.shape)} != noise shape {tuple(noise.shape)}")
    self.images, self.noise, self.mask, self.post = images, noise, mask, post
    self.shape, self.dtype = tuple(images.shape), np.dtype(np.uint8)
    if post is not None:   # a preprocessing may change the channels (grayscale)
      self.shape = (self.shape[0], *post(np.asarray(images[:1])).shape[1:])

  def _rows(self, idx):
    x = np.asarray(self.images[idx])
    if self.noise is not None:
      on = np.ones(len(idx), bool) if self.mask is None else np.asarray(self.mask)[idx]
      if on.all():
        x = protect(x, np.asarray(self.noise[idx]))
      elif on.any():
        x = x.copy()
        x[on] = protect(x[on], np.asarray(self.noise[idx[on]]))
    return x if self.post is None else self.post(x)


class Subset(_Lazy):
  """Rows ``rows`` of ``table``: row k is table[rows[k]]."""

  def __init__(self, table, rows):
    self.table, self.rows = table, np.asarray(rows, np.int64)
    self.shape, self.dtype = (len(self.rows), *table.shape[1:]), np.dtype(table.dtype)

  def _rows(self, idx):
    return np.asarray(self.table[self.rows[idx]])


def chunks(n: int, size: int | None = None):
  """Yield (start, stop) blocks of ``size`` (default CHUNK) rows covering range(n); pass
  ``block_rows(table)`` for a table with large rows."""
  size = size or CHUNK
  for s in range(0, n, size):
    yield s, min(s + size, n)


def abs_stats(table, size: int | None = None) -> tuple[int, int]:
  """(max |v|, how many values are not 0) of an integer table, in one pass, one block at a
  time (int16 per block, never whole)."""
  m = nz = 0
  for s, e in chunks(len(table), size or block_rows(table)):
    block = np.asarray(table[s:e], np.int16)
    m = max(m, int(np.abs(block).max(initial=0)))
    nz += int(np.count_nonzero(block))
  return m, nz


def materialize(table, size: int | None = None) -> np.ndarray:
  """A row table as one numpy array, filled a block at a time."""
  out = np.empty(tuple(table.shape), table.dtype)
  for s, e in chunks(len(table), size or block_rows(table)):
    out[s:e] = table[s:e]
  return out


def equal(a, b, size: int | None = None) -> bool:
  """Same shape and values, compared one block at a time."""
  if tuple(a.shape) != tuple(b.shape):
    return False
  return all(np.array_equal(np.asarray(a[s:e]), np.asarray(b[s:e]))
             for s, e in chunks(len(a), size or block_rows(a)))
