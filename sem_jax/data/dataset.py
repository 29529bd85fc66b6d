"""Datasets as uint8 NHWC arrays (in memory, or memory-mapped from the prepared cache),
validated at the boundary.

Every loader (``sem_jax.data.sources``) returns a [`Dataset`][Dataset] built by
[`make_dataset`][make_dataset]; images are uint8 in [0, 255] (docs/method.md, "Units"), labels int32
in [0, num_classes). The model sees ``normalize(x) = x / 255 - 0.5``; the published
image is ``sem_jax.core.units.protect(x, noise)`` (``rows.Protected`` for a whole table).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from sem_jax.errors import SemJaxError
from sem_jax.files import atomic


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A labelled image dataset in dataset order.

  Attributes:
    name: dataset name as in the config.
    train_images: uint8 (N, H, W, C), pixel levels.
    train_labels: int32 (N,).
    test_images: uint8 (M, H, W, C).
    test_labels: int32 (M,).
    num_classes: C_cls; every label lies in [0, num_classes).
  """
  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int
  class_names: tuple[str, ...] = ()     # folder datasets: class folder names, by label
  train_files: tuple[str, ...] = ()     # folder datasets: file of each training image
  order: str = "fixed"                  # how rows are ordered (recorded in manifests)
  holdout: np.ndarray | None = None     # train rows that are also the test split: they get
                                        # noise and are published, but no model fits them
  digest: str | None = None             # sha256_arrays(train_images, train_labels) when already
                                        # known (a prepared cache stores it): not re-hashed

  @property
  def fit_indices(self) -> np.ndarray:
    """The train rows that surrogates and victims train on, int32 (all but the holdout)."""
    rows = np.arange(self.num_train, dtype=np.int32)
    return rows if self.holdout is None else np.setdiff1d(rows, self.holdout).astype(np.int32)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])

  @property
  def num_train(self) -> int:
    return int(self.train_images.shape[0])


def as_uint8_images(x: np.ndarray, what: str) -> np.ndarray:
  """Check an image array and return it as uint8 NHWC.

  Accepts uint8, or integer/float arrays whose values are integral pixel levels
  in [0, 255]. A 3-D array (N, H, W) gets a channel axis. NaN, infinities,
  out-of-range or fractional values are refused with an error naming the index.
  """
  x = np.asarray(x)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise SemJaxError(f"{what}: expected images of shape (N, H, W, C), got shape {x.shape}")
  if x.shape[0] == 0:
    raise SemJaxError(f"{what}: no images")
  if x.dtype == np.uint8:
    return x
  if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
    raise SemJaxError(f"{what}: unsupported dtype {x.dtype}; use uint8 pixel levels")
  flat = x.reshape(x.shape[0], -1)
  if np.issubdtype(x.dtype, np.floating):
    nonfinite = ~np.isfinite(flat).all(axis=1)
    if nonfinite.any():
      i = int(np.argmax(nonfinite))
      raise SemJaxError(f"{what}: image {i} contains NaN or infinite values")
    if not (flat == np.round(flat)).all():
      raise SemJaxError(f"{what}: float images must hold integral pixel levels in [0, 255] "
                        "(got fractional values; scale [0, 1] data by 255 first)")
  bad = (flat < 0).any(axis=1) | (flat > 255).any(axis=1)
  if bad.any():
    i = int(np.argmax(bad))
    raise SemJaxError(f"{what}: image {i} has values outside [0, 255]")
  return x.astype(np.uint8)


def as_labels(y: np.ndarray, n: int, num_classes: int, what: str) -> np.ndarray:
  """Check labels: shape (n,), integral, in [0, num_classes)."""
  y = np.asarray(y)
  if y.shape != (n,):
    raise SemJaxError(f"{what}: expected {n} labels of shape ({n},), got shape {y.shape}")
  if np.issubdtype(y.dtype, np.floating):
    if not np.isfinite(y).all() or not (y == np.round(y)).all():
      raise SemJaxError(f"{what}: labels must be integers")
  elif not np.issubdtype(y.dtype, np.integer):
    raise SemJaxError(f"{what}: labels must be integers, got dtype {y.dtype}")
  bad = (y < 0) | (y >= num_classes)
  if bad.any():
    i = int(np.argmax(bad))
    raise SemJaxError(f"{what}: label {y[i].item()!r} at index {i} is out of range [0, {num_classes})")
  return y.astype(np.int32)


def make_dataset(name, x_train, y_train, x_test, y_test, num_classes: int = 0) -> Dataset:
  """Validate raw arrays into a [`Dataset`][Dataset] (num_classes 0: max label + 1)."""
  x_train = as_uint8_images(x_train, f"{name} train images")
  x_test = as_uint8_images(x_test, f"{name} test images")
  if x_train.shape[1:] != x_test.shape[1:]:
    raise SemJaxError(f"{name}: train images {x_train.shape[1:]} and test images "
                      f"{x_test.shape[1:]} differ in shape")
  if num_classes <= 0:
    try:
      num_classes = int(max(np.max(y_train), np.max(y_test))) + 1
    except (TypeError, ValueError):
      raise SemJaxError(f"{name}: labels must be integers") from None
  y_train = as_labels(y_train, x_train.shape[0], num_classes, f"{name} train labels")
  y_test = as_labels(y_test, x_test.shape[0], num_classes, f"{name} test labels")
  if num_classes < 2:
    raise SemJaxError(f"{name}: need at least 2 classes, got {num_classes}")
  return Dataset(name, x_train, y_train, x_test, y_test, num_classes)


def fingerprint(ds: Dataset) -> dict:
  """What identifies a dataset in a run's records: name, shapes, classes, SHA-256 of the
  training images and labels."""
  out = {"name": ds.name, "train_shape": list(ds.train_images.shape),
         "test_shape": list(ds.test_images.shape), "num_classes": ds.num_classes,
         "sha256": ds.digest or atomic.sha256_arrays(ds.train_images, ds.train_labels)}
  if ds.holdout is not None:   # which rows no model may fit is part of the data's identity
    out["holdout_sha256"] = atomic.sha256_arrays(np.asarray(ds.holdout, np.int64))
  return out


def check_crop(crop_size: int, image_shape) -> None:
  """A crop must fit inside the stored images."""
  if crop_size > min(image_shape[:2]):
    raise SemJaxError(f"crop_size {crop_size} exceeds the {image_shape[0]}x{image_shape[1]} images")

