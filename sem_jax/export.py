"""Protected datasets out: load a finished run, export clip(image + noise), draw a grid.

``export`` writes the published images (uint8, dataset order, with labels) as

- ``png``: a PNG tree (class folders; index in the file name, or the user's own file
  name for ``folder`` datasets);
- ``png-flat``: ``{index}.png`` for index 0..N-1 in dataset order and ``labels.csv``
  (``file,label,index,class_name``): the layout APBench / ISS-style loaders read;
- ``npy``: arrays for PyTorch, NCHW like torch tensors, dataset order, no pickle:
  ``protected_nchw.npy`` (uint8), ``noise_nchw.npy`` (int8, pixel levels; the
  release's ``train.py --noise-path`` format once pickled by the user), ``labels.npy``
  (int64) and the clean ``test_nchw.npy`` / ``test_labels.npy``;
- ``npz``: one ``.npz`` (NHWC);
- ``tfds``: a TFDS dataset (array_record, splits ``train`` = protected and ``test`` =
  clean, features image / label / index, dataset order kept; read it with
  ``tfds.data_source("sem_jax_protected", data_dir=DIR)``, no TensorFlow needed to
  read; writing needs the ``tfds`` extra),

plus ``export_manifest.json`` recording each file's SHA-256 (and dataset index for
PNGs), which ``verify`` checks. Every format is written a block of rows at a time from
the lazy published table (``rows.Protected``): memory holds one block, never a second
copy of the training set (the ImageNet subset's is ~25 GB).
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from sem_jax import artifacts, fs, rows as R
from sem_jax.data import Dataset, protect
from sem_jax.errors import SemJaxError
from sem_jax.manifest import load_run

EXPORT_MANIFEST = "export_manifest.json"
FORMATS = ("png", "png-flat", "npy", "npz", "tfds")
LABELS_CSV = "labels.csv"
NPY_FILES = ("protected_nchw.npy", "noise_nchw.npy", "labels.npy", "test_nchw.npy",
             "test_labels.npy")
TFDS_NAME = "sem_jax_protected"
TFDS_VERSION = "1.0.0"


def _class_dir(ds: Dataset, label: int) -> str:
  return ds.class_names[label] if ds.class_names else f"{label:03d}"


def png_names(ds: Dataset) -> list[str]:
  """Relative PNG path of every training image, in dataset order."""
  names = []
  for i, label in enumerate(ds.train_labels):
    if ds.train_files:
      stem = os.path.splitext(os.path.basename(ds.train_files[i]))[0]
      names.append(os.path.join(_class_dir(ds, int(label)), stem + ".png"))
    else:
      names.append(os.path.join(_class_dir(ds, int(label)), f"{i:06d}.png"))
  dupes = len(names) - len(set(names))
  if dupes:
    raise SemJaxError(f"{dupes} training images would share a PNG name in one class folder; "
                      "rename them or export as npz")
  return names


def _save_png(path: str, image: np.ndarray) -> None:
  from PIL import Image
  arr = image[..., 0] if image.shape[-1] == 1 else image
  with fs.open(path, "wb") as f:
    Image.fromarray(arr).save(f, format="PNG")


def read_png(path: str, channels: int) -> np.ndarray:
  from PIL import Image
  with fs.open(path, "rb") as f, Image.open(f) as im:
    arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), np.uint8)
  return arr[..., None] if channels == 1 else arr


def flat_name(i: int) -> str:
  """The png-flat file of dataset index ``i`` (unpadded, as APBench and ISS number them)."""
  return f"{i}.png"


def labels_csv_rows(ds: Dataset) -> list[str]:
  """The lines of png-flat's labels.csv: header, then one per index in dataset order."""
  rows = ["file,label,index,class_name"]
  for i, label in enumerate(ds.train_labels):
    rows.append(f"{flat_name(i)},{int(label)},{i},{_class_dir(ds, int(label))}")
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


def _write_blocks(f, shape, dtype, block) -> None:
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


def export(workdir: str, fmt: str, out: str, log=print) -> dict:
  """Write the protected training set of the run in ``workdir`` to ``out``; return its manifest."""
  if fmt not in FORMATS:
    raise SemJaxError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
  if fs.exists(out) and not fs.isdir(out):
    raise SemJaxError(f"export directory {out} is a file, not a directory")
  if fs.exists(out) and fs.isdir(out) and fs.listdir(out):
    raise SemJaxError(f"export directory {out} exists and is not empty; refusing to overwrite it")
  run = load_run(workdir)
  ds = run.dataset
  published = R.Protected(ds.train_images, run.noise)
  artifacts.make_dir(out, "export directory")
  files = {}
  if fmt in ("png", "png-flat"):
    names = png_names(ds) if fmt == "png" else [flat_name(i) for i in range(ds.num_train)]
    for s, e in R.chunks(ds.num_train, R.block_rows(published)):
      block = published[s:e]
      for i in range(s, e):
        rel = names[i]
        path = os.path.join(out, rel)
        fs.makedirs(os.path.dirname(path))
        _save_png(path, block[i - s])
        files[rel] = {"index": i, "label": int(ds.train_labels[i]),
                      "sha256": artifacts.sha256_file(path)}
    if fmt == "png-flat":
      artifacts.write_text(os.path.join(out, LABELS_CSV), "\n".join(labels_csv_rows(ds)) + "\n")
      files[LABELS_CSV] = {"sha256": artifacts.sha256_file(os.path.join(out, LABELS_CSV))}
  elif fmt == "npy":
    for rel, (shape, dtype, block) in npy_specs(ds, published, run.noise).items():
      path = os.path.join(out, rel)
      artifacts._atomic_write(path, lambda f: _write_blocks(f, shape, dtype, block))
      files[rel] = {"shape": list(shape), "dtype": dtype.name,
                    "sha256": artifacts.sha256_file(path)}
  elif fmt == "tfds":
    files = _export_tfds(ds, published, out)
  else:
    rel = "protected.npz"
    path = os.path.join(out, rel)

    def write_npz(f):
      with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for key, (shape, dtype, block) in npz_members(ds, published).items():
          with z.open(key + ".npy", "w", force_zip64=True) as m:
            _write_blocks(m, shape, dtype, block)
    artifacts._atomic_write(path, write_npz)
    files[rel] = {"sha256": artifacts.sha256_file(path)}
  manifest = {"format": fmt, "source": fs.abspath(workdir),
              "noise_sha256": run.manifest.noise_sha256, "dataset": ds.name,
              "dataset_order": ds.order, "num_train": ds.num_train,
              "class_names": list(ds.class_names), "files": files}
  artifacts.write_json(os.path.join(out, EXPORT_MANIFEST), manifest)
  log(f"exported {ds.num_train} protected images ({fmt}) to {out}")
  return manifest


def _export_tfds(ds: Dataset, published: np.ndarray, out: str) -> dict:
  """Write the TFDS dataset under out/sem_jax_protected/1.0.0; return {relative file: sha256}."""
  try:
    import tensorflow as tf  # TFDS serialises the examples with TensorFlow
    del tf
    import tensorflow_datasets as tfds
  except ImportError:
    raise SemJaxError("--format tfds needs TensorFlow and tensorflow-datasets to write the "
                      "dataset: pip install -e '.[tfds]' (reading it needs no TensorFlow)") from None
  names = list(ds.class_names) or [str(c) for c in range(ds.num_classes)]
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=ds.image_shape),
      "label": tfds.features.ClassLabel(names=names),
      "index": np.int64,
  })

  def examples(images, labels):
    for i in range(len(labels)):
      yield i, {"image": images[i], "label": int(labels[i]), "index": i}

  tfds.dataset_builders.store_as_tfds_dataset(
      name=TFDS_NAME, version=TFDS_VERSION, features=features, data_dir=out,
      split_datasets={"train": examples(published, ds.train_labels),
                      "test": examples(ds.test_images, ds.test_labels)},
      file_format="array_record", disable_shuffling=True,
      description=f"{ds.name} protected by sem_jax: train = clip(image + noise), test = clean")
  root = os.path.join(out, TFDS_NAME, TFDS_VERSION)
  files = {}
  for d, _, names_ in fs.walk(root):
    for f in sorted(names_):
      path = os.path.join(d, f)
      files[fs.relpath(path, out)] = {"sha256": artifacts.sha256_file(path)}
  return files


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


def visualize(workdir: str, out: str, classes: int = 5, per_class: int = 2, scale: int = 0,
              log=print) -> str:
  """A PNG grid: rows of (clean | noise scaled (δ+ε)/(2ε) | protected) for a few classes."""
  from PIL import Image
  run = load_run(workdir)
  ds = run.dataset
  eps = max(1, run.manifest.radius_levels)
  rows = []
  for c in range(min(classes, ds.num_classes)):
    for i in np.flatnonzero(ds.train_labels == c)[:per_class]:
      clean = ds.train_images[i]
      noise = np.clip((run.noise[i].astype(np.float32) + eps) / (2 * eps) * 255, 0, 255)
      rows.append(np.concatenate([clean, noise.astype(np.uint8), protect(clean, run.noise[i])], 1))
  if not rows:
    raise SemJaxError("nothing to draw")
  grid = np.concatenate(rows, 0)
  scale = scale or max(1, 128 // ds.image_shape[0])
  grid = grid.repeat(scale, 0).repeat(scale, 1)
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if fs.isdir(out):
    raise SemJaxError(f"visualize --out {out} is a directory; give a .png file path")
  artifacts.make_dir(os.path.dirname(fs.abspath(out)), "output directory")
  try:
    artifacts._atomic_write(out, lambda f: img.save(f, format="PNG"))
  except OSError as e:
    raise SemJaxError(f"cannot write {out}: {e.strerror or e}") from None
  log(f"wrote {out}: {len(rows)} rows of clean | noise | protected ({img.size[0]}x{img.size[1]})")
  return out
