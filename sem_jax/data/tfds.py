"""TFDS sources: CIFAR-10/100 (read whole, in the original files' order) and the ImageNet
subset (a ``prepared.Source``: decoded and resized once into the prepared cache)."""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from sem_jax.data import prepared
from sem_jax.data.dataset import Dataset, make_dataset
from sem_jax.errors import SemJaxError

TFDS_SETS = {"cifar10": ("cifar10", 10), "cifar100": ("cifar100", 100),
             "svhn": ("svhn_cropped", 10)}   # our name: (TFDS name, classes)


def load_tfds(name: str, data_dir: str, num_classes: int = 0) -> Dataset:
  """CIFAR-10/100 and SVHN (``svhn_cropped``: 73257 train / 26032 test digits of 32x32x3,
  labels 0-9) through ``tfds.data_source`` (random access, no TensorFlow at read time).

  TFDS stores the records shuffled; CIFAR's ``id`` feature (``train_12345``) keeps each
  record's index in the original dataset files, the order torchvision, the authors'
  release, APBench and ISS number images by. Rows are put back at those indices
  (``Dataset.order`` says which order a run used). SVHN's records carry no id: they stay in
  TFDS's order, which is not the order of the original ``.mat`` files APBench numbers.
  """
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise SemJaxError(f"dataset {name} needs tensorflow-datasets: pip install -e '.[tfds]'") from None
  tfds_name, classes = TFDS_SETS[name]
  try:
    splits = {s: tfds.data_source(tfds_name, split=s, data_dir=data_dir or None)
              for s in ("train", "test")}
  except Exception as e:
    raise SemJaxError(f"cannot open TFDS dataset {tfds_name!r} in data_dir={data_dir or '<default>'}: "
                      f"{str(e).splitlines()[0] if str(e) else type(e).__name__} (prepare it once "
                      "on a connected machine: pip install -e '.[tf]', then tfds.builder("
                      f"{tfds_name!r}, data_dir=...).download_and_prepare())") from None
  arrays, orders = {}, set()
  for split, src in splits.items():
    images, labels, ids = _read_source(src)
    where = canonical_positions(ids)
    if where is None:
      orders.add("tfds")
      arrays[split] = (images, labels)
    else:
      orders.add("canonical")
      out_x, out_y = np.empty_like(images), np.empty_like(labels)
      out_x[where], out_y[where] = images, labels
      arrays[split] = (out_x, out_y)
  ds = make_dataset(name, *arrays["train"], *arrays["test"],
                    num_classes or classes)
  order = ("canonical (the original files' order, from the TFDS ids)" if orders == {"canonical"}
           else "tfds (the ids carry no index)")
  return dataclasses.replace(ds, order=order)


def canonical_positions(ids) -> np.ndarray | None:
  """Each record's index in the original dataset, parsed from TFDS ids like ``train_12345``
  (digits after the last '_'); None unless they are a permutation of range(len(ids))."""
  pos = np.empty(len(ids), np.int64)
  for i, raw in enumerate(ids):
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    tail = text.rsplit("_", 1)[-1]
    if not tail.isdigit():
      return None
    pos[i] = int(tail)
  if not len(pos) or not np.array_equal(np.sort(pos), np.arange(len(pos))):
    return None
  return pos


IMAGENET_SUBSET_CLASSES = 100     # the first 100 classes of ILSVRC-2012 (docs/method.md)
IMAGENET_SUBSET_SIZE = 256


def imagenet_subset_source(data_dir: str, image_size: int = 0, num_classes: int = 0,
                           chunk: int = 1024) -> "prepared.Source":
  """The first ``num_classes`` (100) classes of TFDS ``imagenet2012``, resized to image_size (256).

  Train = those classes of the train split (~129k images), test = of the validation split
  (5000), in TFDS order. Labels are scanned with the image bytes left undecoded (only when
  preparing); rows are decoded and resized (Pillow, bicubic, antialiased) block by block.
  """
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise SemJaxError("dataset imagenet_subset needs tensorflow-datasets: pip install -e '.[tfds]'") from None
  size = image_size or IMAGENET_SUBSET_SIZE
  keep = num_classes or IMAGENET_SUBSET_CLASSES
  if not 1 <= keep <= 1000:
    raise SemJaxError(f"imagenet_subset: num_classes must be in [1, 1000], got {keep}")
  split_of = {"train": "train", "test": "validation"}
  srcs = {}
  for ours, theirs in split_of.items():
    try:
      srcs[ours] = tfds.data_source("imagenet2012", split=theirs, data_dir=data_dir or None)
    except Exception as e:
      first = str(e).splitlines()[0] if str(e) else type(e).__name__
      raise SemJaxError(
          f"cannot open TFDS imagenet2012 in data_dir={data_dir or '<default>'} ({first}); put "
          "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in <data_dir>/downloads/manual/ "
          "and install the tf extra (TFDS prepares it once, with TensorFlow)") from None
  info = getattr(srcs["train"], "dataset_info", None)
  identity = {"version": str(getattr(info, "version", "")),
              **{f"{s}_records": len(src) for s, src in srcs.items()}}
  selected: dict = {}

  def load_labels() -> dict:
    out = {}
    for ours, theirs in split_of.items():
      raw = tfds.data_source("imagenet2012", split=theirs, data_dir=data_dir or None,
                             decoders={"image": tfds.decode.SkipDecoding()})
      labels = np.array([int(r["label"]) for r in _records(raw, chunk)], np.int64)
      idx = np.flatnonzero(labels < keep)
      if not len(idx):
        raise SemJaxError(f"imagenet2012 {theirs}: no image of the first {keep} classes")
      selected[ours] = idx
      out[ours] = labels[idx]
    return out

  def decode(split: str, rows: np.ndarray) -> np.ndarray:
    from PIL import Image
    if split not in selected:
      load_labels()
    out = np.empty((len(rows), size, size, 3), np.uint8)
    for j, rec in enumerate(_records(srcs[split], chunk, selected[split][rows])):
      img = Image.fromarray(np.asarray(rec["image"], np.uint8)).convert("RGB")
      out[j] = np.asarray(img.resize((size, size), Image.BICUBIC), np.uint8)
    return out

  return prepared.Source(
      name="imagenet_subset",
      key={"name": "imagenet_subset", "data_dir": os.path.abspath(data_dir) if data_dir else "",
           "image_size": size, "num_classes": keep, "resize": "PIL bicubic"},
      identity=identity, load_labels=load_labels, image_shape=(size, size, 3),
      num_classes=keep, decode=decode, extras={"order": "tfds"})


def load_imagenet_subset(data_dir: str, image_size: int = 0, num_classes: int = 0,
                         cache: str = "off", log=print, group=None) -> Dataset:
  """The ImageNet subset (``imagenet_subset_source``), from its prepared cache unless
  ``cache`` is off."""
  return prepared.load(imagenet_subset_source(data_dir, image_size, num_classes), cache, log,
                       group=group)


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


def _read_source(src, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray, list]:
  """(images, labels, ids) of all records of a TFDS data source, in its order (ids: the
  ``id`` feature, or None per record), read in chunks."""
  images, labels, ids = [], [], []
  for r in _records(src, chunk):
    images.append(np.asarray(r["image"]))
    labels.append(int(r["label"]))
    ids.append(r.get("id") if hasattr(r, "get") else None)
  return np.stack(images), np.asarray(labels), ids
