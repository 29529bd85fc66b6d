"""Convolution-based unlearnable datasets (CUDA; Sadasivan et al., "CUDA: Convolution-based
Unlearnable Datasets", CVPR 2023; docs/method.md, "The field's other attacks").

Model-free and class-wise: class k gets a private ``size`` x ``size`` filter W_k whose entries
are drawn U[0, blur], then one entry, at a uniformly drawn position, set to 1 (the release's
``center_parameter``); one filter for every channel (a depthwise convolution, zero padding,
no bias). An image x of class k (fractions of [0, 1]) is published as

    x' = trunc(clip(255 (W_k ⋆ x) / max(W_k ⋆ x), 0, 255))      (whole pixel levels)

with ⋆ the cross-correlation of PyTorch's conv2d and the max over the whole image, every pixel
and channel (an all-black image stays black). The noise is x' - x in levels, up to ±255
(stored as int16). The budget is not a norm ball but the filters: ``blur`` bounds their
entries, and ``verify`` recomputes every published image from its clean image and the filters
the manifest records. Plain numpy in float64, so that generation and verification agree bit
for bit.
"""
from __future__ import annotations

import jax
import numpy as np

from sem_jax.core import checks
from sem_jax.errors import SemJaxError

CENTER = 1.0     # the entry set to 1 in every filter (the release's center_parameter)


def filters(key: jax.Array, num_classes: int, size: int = 3, blur: float = 0.3) -> np.ndarray:
  """(num_classes, size, size) float64: class k's filter from ``fold_in(key, k)``, entries
  U[0, blur] (drawn in float32) and one uniformly placed entry set to 1."""
  if size < 1 or size % 2 == 0:
    raise SemJaxError(f"cuda.filters: the filter size must be odd and >= 1, got {size}")
  if not 0 < blur <= 1:
    raise SemJaxError(f"cuda.filters: the blur parameter must be in (0, 1], got {blur}")
  if num_classes < 1:
    raise SemJaxError(f"cuda.filters: num_classes must be >= 1, got {num_classes}")
  out = np.empty((num_classes, size, size), np.float64)
  for k in range(num_classes):
    k_w, k_c = jax.random.split(jax.random.fold_in(key, k))
    w = np.asarray(jax.random.uniform(k_w, (size * size,), maxval=blur), np.float64)
    w[int(jax.random.randint(k_c, (), 0, size * size))] = CENTER
    out[k] = w.reshape(size, size)
  return out


def correlate(images: np.ndarray, filt: np.ndarray) -> np.ndarray:
  """(n, H, W, C) float64: each channel of ``images`` cross-correlated with the (s, s)
  ``filt``, zero padding s // 2 (the output keeps the input's size)."""
  s = filt.shape[0]
  p = s // 2
  x = np.pad(np.asarray(images, np.float64), ((0, 0), (p, p), (p, p), (0, 0)))
  h, w = images.shape[1:3]
  out = np.zeros(images.shape, np.float64)
  for a in range(s):
    for b in range(s):
      out += filt[a, b] * x[:, a:a + h, b:b + w, :]
  return out


def _checked(fn: str, images_u8, labels, class_filters) -> np.ndarray:
  """The filters as float64 (K, s, s), after refusing images that are not a uint8 batch,
  labels that are not one integer in [0, K) per image, or filters of another shape."""
  checks.uint8_images(images_u8, fn)
  f = np.asarray(class_filters, np.float64)
  if f.ndim != 3 or f.shape[1] != f.shape[2] or f.shape[1] % 2 == 0 or not len(f):
    raise SemJaxError(f"{fn}: class_filters must be (num_classes, s, s) with s odd "
                      f"(cuda.filters), got shape {f.shape}")
  checks.labels(np.asarray(labels), len(images_u8), len(f), fn)
  return f


def publish(images_u8: np.ndarray, labels: np.ndarray, class_filters: np.ndarray) -> np.ndarray:
  """(n, H, W, C) uint8: the CUDA images of a block (see the module docstring); ``labels``
  (n,) integers in [0, K), ``class_filters`` (K, s, s) from [`filters`][filters]."""
  return _publish(images_u8, labels, _checked("cuda.publish", images_u8, labels, class_filters))


def _publish(images_u8, labels, class_filters: np.ndarray) -> np.ndarray:
  """[`publish`][publish] on inputs already checked."""
  x = np.asarray(images_u8, np.float64) / 255.0
  out = np.zeros(x.shape, np.float64)
  labels = np.asarray(labels)
  for k in np.unique(labels):
    rows = np.flatnonzero(labels == k)
    y = correlate(x[rows], class_filters[int(k)])
    top = y.reshape(len(rows), -1).max(axis=1)
    scale = np.where(top > 0, 255.0 / np.where(top > 0, top, 1.0), 0.0)
    out[rows] = y * scale[:, None, None, None]
  return np.trunc(np.clip(out, 0, 255)).astype(np.uint8)


def noise(images_u8: np.ndarray, labels: np.ndarray, class_filters: np.ndarray) -> np.ndarray:
  """(n, H, W, C) int16 pixel levels: the CUDA image minus the clean one."""
  class_filters = _checked("cuda.noise", images_u8, labels, class_filters)
  return (_publish(images_u8, labels, class_filters).astype(np.int16)
          - np.asarray(images_u8).astype(np.int16))


def valid_filters(class_filters, size: int, blur: float) -> bool:
  """Whether recorded filters are CUDA filters of ``size`` and ``blur``: every entry in
  [0, blur] except at least one equal to 1."""
  f = np.asarray(class_filters, np.float64)
  if f.ndim != 3 or f.shape[1:] != (size, size):
    return False
  other = np.where(f == CENTER, 0.0, f)
  return bool(((f == CENTER).reshape(len(f), -1).any(1)).all()
              and (other >= 0).all() and (other <= blur + 1e-7).all())


def outside(budget: dict, noise: np.ndarray, clean_u8: np.ndarray | None,
            labels: np.ndarray | None = None) -> np.ndarray:
  """(n,) True for each image of the block that breaks the conv ``budget``
  ([`sem_jax.core.crafting.budgets.conv`][sem_jax.core.crafting.budgets.conv]): clean + noise is not its class filter's CUDA
  image (without ``labels``: no class filter's). Every image fails where the filters are
  missing or not CUDA filters of the budget's size and blur, or the clean images are."""
  v = np.asarray(noise).astype(np.int32)
  n = len(v)
  class_filters = np.asarray(budget.get("filters", []), np.float64)
  if clean_u8 is None or not len(class_filters) or not valid_filters(
      class_filters, budget["kernel_size"], budget["blur"]):
    return np.ones(n, bool)
  published = np.clip(np.asarray(clean_u8).astype(np.int32) + v, 0, 255)
  if labels is not None:
    labels = np.asarray(labels)
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= len(class_filters):
      return np.ones(n, bool)
    return (published != _publish(clean_u8, labels, class_filters)).reshape(n, -1).any(1)
  bad = np.ones(n, bool)
  for k in range(len(class_filters)):
    want = _publish(clean_u8, np.full(n, k), class_filters)
    bad &= (published != want).reshape(n, -1).any(1)
  return bad
