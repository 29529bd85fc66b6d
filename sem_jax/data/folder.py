"""A user's own images: one sub-folder per class, or a flat folder with ``labels.csv``.

Every image is a training row, in listing order, so every photo gets noise and is exported
under its own name; a fixed, seeded, stratified fraction of each class is also the test split
(the *holdout*), which no model trains on. Decoded once into the prepared cache
([`sem_jax.data.prepared`][sem_jax.data.prepared]).
"""
from __future__ import annotations

import os

import numpy as np

from sem_jax.data import prepared
from sem_jax.data.dataset import Dataset
from sem_jax.errors import SemJaxError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FOLDER_SPLIT_SEED = 20240102


def read_image(path: str, size: int) -> np.ndarray:
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
  _check_export_names(root, files, names)
  return files, names, sorted(set(names))


def _check_export_names(root: str, files: list[str], names: list[str]) -> None:
  """Refuse photos of one class whose exports would share a name (``cat/p0.jpg`` and
  ``cat/p0.png`` both become ``cat/p0.png``; compared without case, as macOS and Windows do),
  naming every file of the first clash: found before any training, not at export."""
  seen: dict[tuple[str, str], list[str]] = {}
  for f, c in zip(files, names):
    seen.setdefault((c, os.path.splitext(os.path.basename(f))[0].lower()), []).append(f)
  clashes = [v for v in seen.values() if len(v) > 1]
  if clashes:
    more = f" (and {len(clashes) - 1} more clashes)" if len(clashes) > 1 else ""
    raise SemJaxError(f"photos of one class in {root} would be exported under one name: "
                      f"{', '.join(clashes[0])}{more}; rename them so each name is unique "
                      "without its extension")


def folder_source(root: str, image_size: int = 0, test_fraction: float = 0.2,
                  num_classes: int = 0) -> "prepared.Source":
  """A user's own images: one sub-folder per class, or a flat folder with labels.csv.

  Images are decoded to RGB uint8 and resized to image_size x image_size (0 keeps
  their size, which must then be the same for all). Every image is a training row
  (listing order), so every photo gets noise and is exported under its own name
  (``Dataset.train_files``). A fixed seeded, stratified ``test_fraction`` of each class
  is also the test split and the ``holdout``: no model trains on those rows, so the
  surrogate's and victims' test accuracy is measured on photos they never fitted (at
  least one image per class is fitted; a class needs 2 images). The source's identity
  is the listing with every file's size and modification time.
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
  labels = np.array([classes.index(n) for n in names], np.int64)
  rng = np.random.default_rng(FOLDER_SPLIT_SEED)
  test = np.zeros(len(files), bool)
  for c in range(len(classes)):
    idx = rng.permutation(np.flatnonzero(labels == c))
    k = min(len(idx) - 1, max(1, int(round(test_fraction * len(idx))))) if test_fraction > 0 else 0
    test[idx[:k]] = True
  if not test.any():
    raise SemJaxError("folder dataset: test_fraction leaves no test images")
  holdout = np.flatnonzero(test)
  first = read_image(os.path.join(root, files[0]), image_size)
  shape = first.shape
  stats = [(f, *(lambda st: (st.st_size, st.st_mtime_ns))(os.stat(os.path.join(root, f))))
           for f in files]

  def decode(split: str, rows: np.ndarray) -> np.ndarray:
    which = rows if split == "train" else holdout[rows]
    out = np.empty((len(which), *shape), np.uint8)
    for j, i in enumerate(which):
      im = read_image(os.path.join(root, files[i]), image_size)
      if im.shape != shape:
        raise SemJaxError(f"images differ in size ({shape[:2]} for {files[0]}, {im.shape[:2]} "
                          f"for {files[i]}); set image_size to resize them all")
      out[j] = im
    return out

  return prepared.Source(
      name="folder",
      key={"name": "folder", "root": os.path.abspath(root), "image_size": image_size,
           "test_fraction": test_fraction, "num_classes": num_classes or len(classes)},
      identity={"files": len(files), "listing_sha256": prepared.digest(stats)},
      load_labels=lambda: {"train": labels, "test": labels[holdout]}, image_shape=shape,
      num_classes=num_classes or len(classes), decode=decode,
      extras={"class_names": list(classes), "train_files": list(files),
              "order": "the folder's listing order", "holdout": holdout.tolist()})


def load_folder(root: str, image_size: int = 0, test_fraction: float = 0.2,
                num_classes: int = 0, cache: str = "off", log=print, group=None) -> Dataset:
  """A user's image folder (``folder_source``), from its prepared cache unless ``cache`` is off."""
  return prepared.load(folder_source(root, image_size, test_fraction, num_classes), cache, log,
                       group=group)
