"""``import-noise``: turn noise made by another tool into an ordinary sem_jax noise workdir.

Sources, never guessed:

- an array file (``.npy``, read without pickle) of shape (N, C, H, W) or (N, H, W, C)
  (``layout``), in pixel levels or in fractions of 255 (``units``), any integer or float
  dtype; values are rounded to whole levels (the published image is uint8), and the
  largest rounding is recorded;
- a folder of protected PNGs named ``{index}.png`` for index 0..N-1 (the flat layout of
  APBench and ISS, or our ``png-flat`` export; an APBench ``data/`` sub-folder is entered),
  or in class folders ``<class>/<index>.png`` (APBench's ImageNet-100 layout; each index's
  label is checked against its folder): noise = image - clean image.

Checks, each a one-line error that writes nothing: shape (and image size) against the
dataset's training images, dtype, finiteness, the budget of the method ``cfg`` names
(|noise| <= ε for sem and the other L∞ methods; APBench's ops, lsp and ar poisons with
``--config.method=ops`` etc.: [`sem_jax.run.specs.budget`][sem_jax.run.specs.budget]), every index present once.
The workdir (new or empty) then holds ``noise.npy`` and a ``manifest.json`` recording the
source and its SHA-256, which ``evaluate``, ``verify``, ``export`` and the efficacy
benchmark read like a generated run's.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time

import numpy as np

from sem_jax.core.crafting import budgets
from sem_jax.core.units import whole_levels
from sem_jax.data.dataset import Dataset, fingerprint
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic
from sem_jax.files.lock import WorkdirLock
from sem_jax.files.images import read_png
from sem_jax.run.artifacts import MANIFEST_FILE, NOISE_FILE, manifest_record, save_noise
from sem_jax.run.config import GenerateConfig
from sem_jax.run.inputs import dataset_for
from sem_jax.run.specs import budget_with_filters, outside as specs_outside

LAYOUTS = ("nchw", "nhwc")
UNITS = ("levels", "fraction")
METHOD = "imported"


def import_noise(cfg: GenerateConfig, source: str, workdir: str, layout: str | None = None,
                 units: str | None = None, dataset: Dataset | None = None, log=print) -> dict:
  """Check ``source`` against the dataset ``cfg`` names and write it as a noise workdir.

  ``cfg`` supplies the dataset fields and ε (``noise_radius``, levels). Returns the manifest.
  

  Holds the lock of ``workdir`` (one command per folder) while it writes."""
  with WorkdirLock(workdir, "workdir", log):
    return _import_noise(cfg, source, workdir, layout, units, dataset, log)


def _import_noise(cfg: GenerateConfig, source: str, workdir: str, layout: str | None = None,
                 units: str | None = None, dataset: Dataset | None = None, log=print) -> dict:
  if os.path.exists(workdir) and (not os.path.isdir(workdir) or os.listdir(workdir)):
    raise SemJaxError(f"workdir {workdir} exists and is not empty; import into a new directory")
  if not os.path.exists(source):
    raise SemJaxError(f"noise source not found: {source}")
  ds = dataset if dataset is not None else dataset_for(cfg)
  eps = whole_levels(cfg.noise_radius)
  budget = budget_with_filters(cfg, ds.image_shape, ds.num_classes)   # cuda: the seed's filters
  if os.path.isdir(source):
    if layout or units:
      raise SemJaxError("--layout and --units describe array files; a PNG folder needs neither")
    noise, record = _from_pngs(source, ds)
  else:
    noise, record = _from_array(source, ds, layout, units)
  if budget["norm"] == "linf":
    _check_bound(noise, eps, source)
  else:
    _check_budget(noise, budget, ds, source, cfg.method)
  noise = noise.astype(budgets.storage_dtype(budget))
  manifest = _write(cfg, ds, noise, workdir, {**record, "source": os.path.abspath(source),
                                              "as_method": cfg.method}, budget)
  log(f"imported {source} ({record['kind']}): noise {noise.shape} {noise.dtype.name}, max "
      f"|noise| {manifest['noise_max_abs']} levels, {budgets.describe(budget)} -> {workdir}")
  return manifest


def _from_array(path: str, ds: Dataset, layout: str | None, units: str | None):
  """(noise in whole levels as int16, NHWC; the import record) from an .npy file."""
  if layout not in LAYOUTS:
    raise SemJaxError(f"{path}: say the array's layout with --layout ({' or '.join(LAYOUTS)})")
  if units not in UNITS:
    raise SemJaxError(f"{path}: say the array's units with --units (levels = pixel levels, "
                      "fraction = of 255)")
  try:
    arr = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise SemJaxError(f"{path}: not a readable .npy array without pickle ({e})") from None
  if not isinstance(arr, np.ndarray):
    raise SemJaxError(f"{path}: holds several arrays (an .npz); save the noise alone as .npy")
  if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
    raise SemJaxError(f"{path}: dtype {arr.dtype} is not an integer or float array")
  if arr.ndim != 4:
    raise SemJaxError(f"{path}: expected a 4-D {layout.upper()} array, got shape {arr.shape}")
  nhwc = np.transpose(arr, (0, 2, 3, 1)) if layout == "nchw" else arr
  want = ds.train_images.shape
  if nhwc.shape != want:
    expect = (want[0], want[3], want[1], want[2]) if layout == "nchw" else want
    raise SemJaxError(f"{path}: shape {arr.shape} does not match the {ds.name} training images "
                      f"(want {expect} in {layout.upper()}: {want[0]} indices)")
  values = nhwc.astype(np.float64)
  bad = ~np.isfinite(values)
  if bad.any():
    i = int(np.argwhere(bad)[0][0])
    raise SemJaxError(f"{path}: non-finite noise (NaN or inf) at index {i}")
  if units == "fraction":
    values = values * 255.0
  levels = np.rint(values)
  rounding = float(np.abs(levels - values).max()) if values.size else 0.0
  if np.abs(levels).max(initial=0) > 255:
    i = int(np.argmax(np.abs(levels).reshape(len(levels), -1).max(1)))
    raise SemJaxError(f"{path}: |noise| beyond 255 levels at index {i} (are the units right?)")
  return levels.astype(np.int16), {"kind": "array", "layout": layout, "units": units,
                                   "dtype": arr.dtype.name, "shape": list(arr.shape),
                                   "max_rounding_levels": rounding,
                                   "sha256": atomic.sha256_file(path)}


def _indexed(folder: str, names: list[str], n: int, ds: Dataset, named: dict, label=None):
  """Add ``{index: path}`` of the ``{index}.png`` files ``names`` in ``folder`` to ``named``;
  ``label``: the class folder they lie in, checked against each index's label."""
  for f in names:
    m = re.fullmatch(r"(0|[1-9][0-9]*)\.png", f)
    path = os.path.join(folder, f)
    if m is None or int(m.group(1)) >= n:
      raise SemJaxError(f"{path}: not an index 0..{n - 1} of the {ds.name} "
                        "training images (files must be named {index}.png)")
    i = int(m.group(1))
    if i in named:
      raise SemJaxError(f"{path}: index {i} appears twice (also {named[i]})")
    if label is not None and int(ds.train_labels[i]) != label:
      raise SemJaxError(f"{path}: index {i} has label {int(ds.train_labels[i])}, not its "
                        f"folder's {label}")
    named[i] = path


def _class_folders(folder: str) -> list[str]:
  """APBench's ImageNet-100 layout: sub-folders named by class number holding PNGs."""
  subs = [d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))]
  return sorted((d for d in subs if re.fullmatch(r"[0-9]+", d)), key=int)


def _from_pngs(folder: str, ds: Dataset):
  """(noise = png - clean as int16, NHWC; the import record) from ``{index}.png`` files: flat
  (APBench's CIFAR and SVHN ``<poisons>/<ds>/data/<i>.png``, ISS, our png-flat) or in class
  folders (APBench's ImageNet-100 ``<poisons>/imagenet100/<class>/<i>.png``)."""
  if not _pngs(folder) and os.path.isdir(os.path.join(folder, "data")):
    folder = os.path.join(folder, "data")          # APBench: <poisons>/<ds>/data/<i>.png
  n, named = ds.num_train, {}
  if _pngs(folder) or not _class_folders(folder):
    _indexed(folder, _pngs(folder), n, ds, named)
    layout = "flat"
  else:
    for d in _class_folders(folder):
      _indexed(os.path.join(folder, d), _pngs(os.path.join(folder, d)), n, ds, named, int(d))
    layout = "class folders"
  missing = [i for i in range(n) if i not in named]
  if missing:
    raise SemJaxError(f"{folder}: {len(missing)} of {n} indices have no PNG (first missing: "
                      f"{missing[0]}.png)")
  noise = np.empty(ds.train_images.shape, np.int16)
  digest = hashlib.sha256()
  for i in range(n):
    path = named[i]
    try:
      img = read_png(path, ds.image_shape[2])
    except Exception as e:  # PIL: not an image, truncated file
      raise SemJaxError(f"{path}: not a readable PNG ({type(e).__name__})") from None
    if img.shape != ds.image_shape:
      raise SemJaxError(f"{path}: image {img.shape} does not match the {ds.name} training images "
                        f"{ds.image_shape}")
    noise[i] = img.astype(np.int16) - ds.train_images[i].astype(np.int16)
    digest.update(f"{os.path.relpath(path, folder)}:{atomic.sha256_file(path)}\n".encode())
  return noise, {"kind": "png folder", "layout": layout, "files": n, "sha256": digest.hexdigest(),
                 "sha256_of": "'{file}:{sha256 of file}\\n' for index 0..N-1, in order"}


def _pngs(folder: str) -> list[str]:
  return sorted(f for f in os.listdir(folder) if f.lower().endswith(".png"))


def _check_bound(noise: np.ndarray, eps: int, source: str) -> None:
  over = np.abs(noise.reshape(len(noise), -1)).max(1) > eps if len(noise) else np.zeros(0, bool)
  if over.any():
    i = int(np.argmax(over))
    raise SemJaxError(f"{source}: |noise| {int(np.abs(noise[i]).max())} levels at index {i} exceeds "
                      f"ε = {eps} (set --config.noise_radius to the radius it was made with)")


def _check_budget(noise: np.ndarray, budget: dict, ds: Dataset, source: str, method: str):
  bad = specs_outside(budget, noise, np.asarray(ds.train_images), np.asarray(ds.train_labels))
  if bad.any():
    raise SemJaxError(f"{source}: index {int(np.argmax(bad))} is outside {method}'s budget "
                      f"({budgets.describe(budget)}); {int(bad.sum())} image(s) in all (set "
                      "--config.method and the budget's fields to what made it)")


def _write(cfg: GenerateConfig, ds: Dataset, noise: np.ndarray, workdir: str,
           record: dict, budget: dict) -> dict:
  """noise.npy and manifest.json, built in a sibling temporary folder and moved into place."""
  parent = os.path.dirname(os.path.abspath(workdir))
  atomic.make_dir(parent, "parent directory")
  tmp = tempfile.mkdtemp(prefix=".import-", dir=parent)
  try:
    sha = save_noise(os.path.join(tmp, NOISE_FILE), noise)
    stored = {"noise_format": "npy", "noise_file": NOISE_FILE, "noise_sha256": sha,
              "noise_max_abs": int(np.abs(noise.astype(np.int32)).max(initial=0))}
    manifest = manifest_record(
        METHOD, cfg, ds, fingerprint(ds)["sha256"], stored, imported=record, wall_time_s=0.0,
        budget=budget, noise_dtype=noise.dtype.name,
        imported_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    atomic.write_json(os.path.join(tmp, MANIFEST_FILE), manifest)
    if os.path.isdir(workdir):
      os.rmdir(workdir)     # empty (checked): replaced by the finished folder
    os.replace(tmp, workdir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return manifest
