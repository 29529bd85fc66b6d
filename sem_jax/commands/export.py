"""``export``: the published training set, ``clip(image + noise)``, in the format a user asks for.

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
  read or write; writing needs tensorflow-datasets, the ``tfds`` extra),

plus ``export_manifest.json`` recording each file's SHA-256 (and dataset index for
PNGs), which ``verify`` checks. Every format is written a block of rows at a time from
the lazy published table (``rows.Protected``): memory holds one block, never a second
copy of the training set (the ImageNet subset's is ~25 GB).
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from sem_jax.commands import photos
from sem_jax.commands.formats import (EXPORT_MANIFEST, FORMATS, LABELS_CSV, TFDS_NAME,
                                     TFDS_VERSION, flat_name, labels_csv_rows, npy_specs,
                                     npz_members, png_names, write_blocks)
from sem_jax.commands.tfds_writer import write_tfds
from sem_jax.core import quality
from sem_jax.data import rows as R
from sem_jax.data.dataset import Dataset
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs
from sem_jax.files.lock import WorkdirLock
from sem_jax.files.images import save_png
from sem_jax.run.artifacts import load_run


RESOLUTIONS = ("image", "original")


def export(workdir: str, fmt: str, out: str, log=print, resolution: str = "image",
           jpeg_quality: int = 0) -> dict:
  """Write the protected training set of the run in ``workdir`` to ``out``; return its manifest.

  ``resolution`` "original" (``png`` of a ``folder`` run only): every photo at its own size,
  JPEG sources as JPEG of ``jpeg_quality`` when it is set (`sem_jax.commands.photos`).
  Every export's manifest carries its ``visibility`` (PSNR, SSIM, per-class mean noise).
  Holds the lock of ``out`` (one command per folder) while it writes."""
  if fmt not in FORMATS:
    raise SemJaxError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
  if resolution not in RESOLUTIONS:
    raise SemJaxError(f"unknown --resolution {resolution!r}; choose image or original")
  if resolution == "original" and fmt != "png":
    raise SemJaxError(f"--resolution original writes photo files: use --format png, not {fmt}")
  if jpeg_quality and resolution != "original":
    raise SemJaxError("--jpeg-quality applies to --resolution original only")
  with WorkdirLock(out, "export directory", log):
    return _export(workdir, fmt, out, log, resolution, jpeg_quality)


def _export(workdir: str, fmt: str, out: str, log, resolution: str, jpeg_quality: int) -> dict:
  if fs.exists(out) and not fs.isdir(out):
    raise SemJaxError(f"export directory {out} is a file, not a directory")
  if fs.exists(out) and fs.isdir(out) and fs.listdir(out):
    raise SemJaxError(f"export directory {out} exists and is not empty; refusing to overwrite it")
  run = load_run(workdir)
  ds = run.dataset
  if resolution == "original":
    photos.source_root(run)   # a folder run, before anything is written
  published = R.Protected(ds.train_images, run.noise)
  atomic.make_dir(out, "export directory")
  final, out = out, _staging(out, log)
  try:
    manifest = _write(run, ds, published, fmt, out, log, resolution, jpeg_quality)
    manifest["source"] = fs.abspath(workdir)
    atomic.write_json(os.path.join(out, EXPORT_MANIFEST), manifest)
    _unstage(out, final)
  except BaseException:
    if out != final:
      fs.rmtree(out)
    raise
  size = (f"at {ds.image_shape[0]} px" if resolution == "image" else "at their original sizes"
          + (f", JPEG sources as JPEG of quality {jpeg_quality}" if jpeg_quality else ""))
  log(f"exported {ds.num_train} protected images ({fmt}, {size}) to {final}")
  log(f"visibility: {quality.line(manifest['visibility'])}")
  return manifest


def _staging(out: str, log=print) -> str:
  """Where an export is written before it takes its name: a hidden sibling of a local ``out``,
  so a failed export (a full disk) leaves ``out`` empty and the same command can run again;
  a URL is written in place (object stores have no rename). Called under ``out``'s lock, so
  every other staging folder of ``out`` was left by an export that was killed (kill -9, out of
  memory): it is removed, and said."""
  if fs.is_url(out):
    return out
  parent, name = os.path.split(os.path.abspath(out))
  prefix = f".{name}.export-"
  for other in sorted(os.listdir(parent)):
    path = os.path.join(parent, other)
    if other.startswith(prefix) and other[len(prefix):].isdigit() and os.path.isdir(path):
      fs.rmtree(path)
      log(f"removed {path}: the staging folder of an export that was killed before it finished")
  work = os.path.join(parent, f"{prefix}{os.getpid()}")
  atomic.make_dir(work, "export directory")
  return work


def _unstage(work: str, final: str) -> None:
  if work != final:
    os.rmdir(final)          # empty: checked before anything was written
    os.replace(work, final)


def _write(run, ds, published, fmt: str, out: str, log, resolution: str,
           jpeg_quality: int) -> dict:
  """Every file of the export into ``out``; its manifest (without ``source``)."""
  files, vis = {}, None
  if resolution == "original":
    files, vis = photos.export_originals(run, out, jpeg_quality, log)
  elif fmt in ("png", "png-flat"):
    names = png_names(ds) if fmt == "png" else [flat_name(i) for i in range(ds.num_train)]
    for s, e in R.chunks(ds.num_train, R.block_rows(published)):
      block = published[s:e]
      for i in range(s, e):
        rel = names[i]
        path = os.path.join(out, rel)
        fs.makedirs(os.path.dirname(path))
        save_png(path, block[i - s])
        files[rel] = {"index": i, "label": int(ds.train_labels[i]),
                      "sha256": atomic.sha256_file(path)}
    if fmt == "png-flat":
      atomic.write_text(os.path.join(out, LABELS_CSV), "\n".join(labels_csv_rows(ds)) + "\n")
      files[LABELS_CSV] = {"sha256": atomic.sha256_file(os.path.join(out, LABELS_CSV))}
  elif fmt == "npy":
    for rel, (shape, dtype, block) in npy_specs(ds, published, run.noise).items():
      path = os.path.join(out, rel)
      atomic.atomic_write(path, lambda f: write_blocks(f, shape, dtype, block))
      files[rel] = {"shape": list(shape), "dtype": dtype.name,
                    "sha256": atomic.sha256_file(path)}
  elif fmt == "tfds":
    files = _export_tfds(ds, published, out)
  else:
    rel = "protected.npz"
    path = os.path.join(out, rel)

    def write_npz(f):
      with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for key, (shape, dtype, block) in npz_members(ds, published).items():
          with z.open(key + ".npy", "w", force_zip64=True) as m:
            write_blocks(m, shape, dtype, block)
    atomic.atomic_write(path, write_npz)
    files[rel] = {"sha256": atomic.sha256_file(path)}
  if vis is None:
    names = png_names(ds) if fmt == "png" else [str(i) for i in range(ds.num_train)]
    vis = photos.row_visibility(ds, run.noise, names)
    for rel, rec in files.items():
      if "index" in rec:
        rec.update(psnr_db=vis["per_image"]["psnr_db"][rec["index"]],
                   ssim=vis["per_image"]["ssim"][rec["index"]])
  manifest = {"format": fmt, "resolution": resolution, "source": "",
              "noise_sha256": run.manifest.noise_sha256, "dataset": ds.name,
              "dataset_order": ds.order, "num_train": ds.num_train,
              "class_names": list(ds.class_names), "visibility": vis, "files": files}
  return manifest


def _export_tfds(ds: Dataset, published: np.ndarray, out: str) -> dict:
  """Write the TFDS dataset under out/sem_jax_protected/1.0.0 (no TensorFlow:
  [`sem_jax.commands.tfds_writer`][sem_jax.commands.tfds_writer]); return {relative file: sha256}."""
  names = list(ds.class_names) or [str(c) for c in range(ds.num_classes)]
  root = write_tfds(out, TFDS_NAME, TFDS_VERSION, ds.image_shape, names,
                    {"train": (published, ds.train_labels),
                     "test": (ds.test_images, ds.test_labels)},
                    f"{ds.name} protected by sem_jax: train = clip(image + noise), test = clean")
  files = {}
  for d, _, names_ in fs.walk(root):
    for f in sorted(names_):
      path = os.path.join(d, f)
      files[fs.relpath(path, out)] = {"sha256": atomic.sha256_file(path)}
  return files


