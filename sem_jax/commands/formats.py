"""The export formats' layouts, shared by ``export`` (which writes them) and ``verify`` (which
reads them back): file names, the arrays of the npy and npz exports, and .npy block streams."""
from __future__ import annotations

import os

import numpy as np

from sem_jax.data import rows as R
from sem_jax.data.dataset import Dataset
from sem_jax.errors import SemJaxError
from sem_jax.run.identity import EXPORT_MARK

EXPORT_MANIFEST = EXPORT_MARK
FORMATS = ("png", "png-flat", "npy", "npz", "tfds")
LABELS_CSV = "labels.csv"
NPY_FILES = ("protected_nchw.npy", "noise_nchw.npy", "labels.npy", "test_nchw.npy",
             "test_labels.npy")
TFDS_NAME = "sem_jax_protected"
TFDS_VERSION = "1.0.0"



def class_dir(ds: Dataset, label: int) -> str:
  return ds.class_names[label] if ds.class_names else f"{label:03d}"


def png_names(ds: Dataset) -> list[str]:
  """Relative PNG path of every training image, in dataset order."""
  names = []
  for i, label in enumerate(ds.train_labels):
    if ds.train_files:
      stem = os.path.splitext(os.path.basename(ds.train_files[i]))[0]
      names.append(os.path.join(class_dir(ds, int(label)), stem + ".png"))
    else:
      names.append(os.path.join(class_dir(ds, int(label)), f"{i:06d}.png"))
  if len(set(names)) != len(names):
    first = next(n for n in names if names.count(n) > 1)
    who = [ds.train_files[i] if ds.train_files else str(i) for i, n in enumerate(names)
           if n == first]
    raise SemJaxError(f"training images {', '.join(who)} would share the PNG name {first}; "
                      "rename them or export as npz")
  return names


def flat_name(i: int) -> str:
  """The png-flat file of dataset index ``i`` (unpadded, as APBench and ISS number them)."""
  return f"{i}.png"


def labels_csv_rows(ds: Dataset) -> list[str]:
  """The lines of png-flat's labels.csv: header, then one per index in dataset order."""
  rows = ["file,label,index,class_name"]
  for i, label in enumerate(ds.train_labels):
    rows.append(f"{flat_name(i)},{int(label)},{i},{class_dir(ds, int(label))}")
  return rows


def nchw(x: np.ndarray) -> np.ndarray:
  """(N, H, W, C) -> (N, C, H, W), contiguous."""
  return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def npy_specs(ds: Dataset, published, noise) -> dict:
  """The arrays of the npy export by file name (NPY_FILES): (shape, dtype, block(start, stop)),
  each block read from the lazy tables (NCHW for images)."""
  def nchw_of(t):
    n, h, w, c = t.shape
    return (n, c, h, w), lambda s, e: nchw(np.asarray(t[s:e]))

  def vec(v):
    return (len(v),), lambda s, e: np.asarray(v[s:e], np.int64)

  parts = (nchw_of(published), nchw_of(noise), vec(ds.train_labels), nchw_of(ds.test_images),
           vec(ds.test_labels))
  dtypes = (np.uint8, np.int8, np.int64, np.uint8, np.int64)
  return {rel: (shape, np.dtype(dt), fn) for rel, (shape, fn), dt in zip(NPY_FILES, parts, dtypes)}


def _npy_header(shape, dtype) -> dict:
  return {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
          "shape": tuple(int(v) for v in shape)}


def write_blocks(f, shape, dtype, block) -> None:
  """An .npy stream (header, then rows block by block) into the open binary file ``f``."""
  np.lib.format.write_array_header_1_0(f, _npy_header(shape, dtype))   # as np.save writes
  for s, e in R.chunks(shape[0], R.block_rows(np.empty((0, *shape[1:]), dtype))):
    f.write(np.ascontiguousarray(block(s, e), dtype).tobytes())


def read_npy_blocks(f, size: int | None = None):
  """(shape, dtype, iterator of row blocks) of an .npy stream in the open binary file ``f``."""
  version = np.lib.format.read_magic(f)
  shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                           else np.lib.format.read_array_header_2_0(f))
  if fortran or dtype.hasobject:
    raise SemJaxError("an exported array is Fortran-ordered or holds objects")
  per_row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
  size = size or R.block_rows(np.empty((0, *shape[1:]), dtype))

  def blocks():
    for s, e in R.chunks(shape[0] if shape else 0, size):
      buf = f.read((e - s) * per_row)
      if len(buf) != (e - s) * per_row:
        raise SemJaxError("an exported array is truncated")
      yield np.frombuffer(buf, dtype).reshape((e - s, *shape[1:]))
  return tuple(shape), dtype, blocks()


def npz_members(ds: Dataset, published) -> dict:
  """The arrays of the npz export (NHWC) as npy_specs-style (shape, dtype, block)."""
  whole = lambda t: (lambda s, e: np.asarray(t[s:e]))
  return {"x_train": (tuple(published.shape), np.dtype(np.uint8), whole(published)),
          "y_train": ((ds.num_train,), ds.train_labels.dtype, whole(ds.train_labels)),
          "x_test": (tuple(ds.test_images.shape), np.dtype(np.uint8), whole(ds.test_images)),
          "y_test": ((len(ds.test_labels),), ds.test_labels.dtype, whole(ds.test_labels)),
          "index": ((ds.num_train,), np.dtype(np.int64),
                    lambda s, e: np.arange(s, e, dtype=np.int64))}



def read_tfds(out: str, split: str = "train"):
  """(images uint8, labels, indices) of an exported TFDS dataset, read without TensorFlow."""
  blocks = list(read_tfds_blocks(out, split))
  if not blocks:
    return np.zeros((0,), np.uint8), np.zeros((0,), np.int64), np.zeros((0,), np.int64)
  return tuple(np.concatenate([b[k] for b in blocks]) for k in range(3))


def read_tfds_blocks(out: str, split: str = "train", size: int | None = None):
  """Yield (images, labels, indices) of an exported TFDS split, a block of records at a time."""
  import tensorflow_datasets as tfds
  src = tfds.data_source(TFDS_NAME, data_dir=out, split=split)
  for s, e in R.chunks(len(src), size or 128):
    recs = [src[i] for i in range(s, e)]
    yield (np.stack([np.asarray(r["image"], np.uint8) for r in recs]),
           np.array([int(r["label"]) for r in recs]), np.array([int(r["index"]) for r in recs]))


