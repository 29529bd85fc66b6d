"""``verify``: check a run's artifacts (and optionally an export) without trusting them.

Everything is read and compared a block of rows at a time (memory-mapped noise, the lazy
published table ``rows.Protected``, exported files streamed), so verifying the ImageNet
subset needs one block's memory, not the table's.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from sem_jax.commands import photos
from sem_jax.commands.formats import (EXPORT_MANIFEST, LABELS_CSV, flat_name,
                                     labels_csv_rows, npy_specs, npz_members, png_names,
                                     read_npy_blocks, read_tfds_blocks)
from sem_jax.core.crafting import budgets
from sem_jax.core import quality
from sem_jax.data import rows as R
from sem_jax.data.dataset import fingerprint
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs
from sem_jax.files.images import read_png
from sem_jax.run.artifacts import MANIFEST_FILE, Manifest
from sem_jax.run import machine, specs
from sem_jax.run.inputs import dataset_for


def verify(workdir: str, export_dir: str | None = None) -> list[tuple[bool, str]]:
  """Return (passed, message) for every check; messages name the file they concern."""
  if not fs.isdir(workdir):
    raise SemJaxError(f"noise directory not found: {workdir}")
  if export_dir is not None and not fs.isdir(export_dir):
    raise SemJaxError(f"export directory not found: {export_dir}")
  checks: list[tuple[bool, str]] = []
  add = lambda ok, msg: checks.append((bool(ok), msg))
  try:
    man = Manifest(workdir, atomic.read_json(os.path.join(workdir, MANIFEST_FILE)))
  except SemJaxError as e:
    add(False, str(e))
    return checks
  mpath = man.path
  add(True, f"{mpath}: readable")
  files = man.noise_files()
  for path, _, _, want in files:
    if not fs.exists(path):
      add(False, f"{path}: missing")
      continue
    same = atomic.sha256_file(path) == want
    add(same, f"{path}: SHA-256 {'matches' if same else 'does NOT match'} the manifest"
        + ("" if same else " (file altered)"))
  try:
    noise = man.read_noise(check_sha=False, mmap=True)
  except SemJaxError as e:
    add(False, str(e))
    return checks
  npath = man.noise_location   # read without pickle; (N, H, W, C) of its dtype or it raised
  budget = man.budget
  ds = dataset_for(man.config)
  fits = tuple(noise.shape) == ds.train_images.shape
  m, nonzero = R.abs_stats(noise)
  if budget.get("norm", "linf") == "linf":
    eps = budget["radius_levels"]
    add(m <= eps, f"{npath}: max |noise| = {m} levels {'<=' if m <= eps else '>'} ε = {eps}")
  elif fits:
    bad = budget_violations(budget, noise, ds.train_images, ds.train_labels)
    add(bad == 0, f"{npath}: {man.method}'s budget ({budgets.describe(budget)}): "
        + ("every image within it" if bad == 0 else f"{bad} image(s) OUTSIDE it"))
  add(True, _nonzero_line(npath, nonzero, int(np.prod(noise.shape))))
  add(fits,
      f"{npath}: {man.raw.get('noise_dtype', 'int8')} {tuple(noise.shape)}: {noise.shape[0]} rows for {ds.num_train} training "
      f"indices ({'every index present' if fits else 'SHAPE MISMATCH'})"
      + (f" in {len(files)} shards" if man.sharded else ""))
  if man.method == "imported":   # no final pass: the import checked every index instead
    src = man.raw.get("imported", {})
    add(src.get("sha256") and src.get("source"),
        f"{mpath}: imported from {src.get('source')} (SHA-256 {str(src.get('sha256'))[:12]}...)")
  else:
    add(man.raw.get("final_pass_regenerated") == ds.num_train,
        f"{mpath}: final pass regenerated {man.raw.get('final_pass_regenerated')} of "
        f"{ds.num_train}")
  if man.method != "imported":   # an import records the file it read, not a machine
    add(True, made_on(man.raw))
  same_data = fingerprint(ds)["sha256"] == man.dataset_sha256
  add(same_data, f"dataset {ds.name}: {'unchanged since' if same_data else 'CHANGED since'} "
      "generation")
  if export_dir is not None and fits:
    _check_export(add, man, ds, noise, export_dir)
  elif fits:
    names = png_names(ds) if ds.train_files else [str(i) for i in range(ds.num_train)]
    add(True, f"{npath}: visibility at {ds.image_shape[0]} px "
        f"{quality.line(photos.row_visibility(ds, noise, names))}")
  return checks


def _nonzero_line(npath: str, nz: int, total: int) -> str:
  """The share of non-zero values; under 1 % the published images are (nearly) the clean
  ones, which the line says: within its budget, such a noise cannot protect."""
  share = 100.0 * nz / max(total, 1)
  line = f"{npath}: {nz} of {total} values non-zero ({share:.3g} %)"
  if share < 1:
    line += ("; NOTE: the published images are, but for these values, the clean ones: this "
             "noise cannot protect them")
  return line


def made_on(raw: dict) -> str:
  """Where the noise was computed and what a regeneration here would give
  ([`sem_jax.run.machine`][sem_jax.run.machine])."""
  made = raw.get("machine")
  devices = raw.get("device_count")
  text = f"made on {machine.line(made)}" + (f", {devices} device(s)" if devices else "")
  same = machine.same_numerics(made, machine.describe())
  if same is None:
    return text + "; the machine was not recorded, so a regeneration is not comparable bit for bit"
  if same:
    return text + ("; this machine computes the same bits: the same config and seed regenerate "
                   "this noise exactly" + (f" on {devices} device(s)" if devices else ""))
  return text + ("; this machine is another CPU or accelerator: a regeneration protects within "
                 "the seed spread but is not this noise")


def budget_violations(budget: dict, noise, clean, labels=None, block: int = 4096) -> int:
  """Images of the table ``noise`` (memory-mapped or in memory) outside ``budget``, a block at
  a time ([`sem_jax.run.specs.block_violations`][sem_jax.run.specs.block_violations])."""
  return sum(specs.block_violations(budget, np.asarray(noise[a:a + block]),
                                    np.asarray(clean[a:a + block]),
                                    None if labels is None else np.asarray(labels[a:a + block]))
             for a in range(0, len(noise), block))


def _check_export(add, man: Manifest, ds, noise: np.ndarray, export_dir: str) -> None:
  """The export checks: its manifest, every file's SHA-256 and contents, every index present."""
  epath = os.path.join(export_dir, EXPORT_MANIFEST)
  try:
    emani = atomic.read_json(epath)
  except SemJaxError as e:
    add(False, str(e))
    return
  same_noise = emani.get("noise_sha256") == man.noise_sha256
  add(same_noise, f"{epath}: exported from this noise" if same_noise
      else f"{epath}: exported from a different noise")
  fmt = emani.get("format")
  published = R.Protected(ds.train_images, noise)
  files = emani.get("files", {})
  bad, indices = [], []
  for rel, rec in sorted(files.items()):
    path = os.path.join(export_dir, rel)
    if not fs.exists(path):
      bad.append(f"{path}: missing")
    elif atomic.sha256_file(path) != rec.get("sha256"):
      bad.append(f"{path}: SHA-256 does not match {EXPORT_MANIFEST} (file altered)")
    elif emani.get("resolution") == "original" and "index" in rec:
      indices.append(rec["index"])
      problem = (photos.check_original(path, rec, man.config.data_dir, np.asarray(noise[rec["index"]]))
                 if isinstance(rec["index"], int) and 0 <= rec["index"] < ds.num_train
                 else f"{path}: index {rec['index']!r} is not a training index")
      if problem:
        bad.append(problem)
    elif fmt in ("png", "png-flat") and "index" in rec:
      indices.append(rec["index"])
      if not _png_matches(path, rec["index"], ds, published):
        bad.append(f"{path}: pixels differ from clip(image + noise) of index {rec['index']}")
  covered = False
  if not bad:
    try:
      covered, problem = _contents(fmt, export_dir, ds, published, noise, indices)
    except Exception as e:  # an unreadable file or dataset
      covered, problem = False, f"{export_dir}: unreadable ({type(e).__name__}: {e})"
    if problem:
      bad.append(problem)
  add(covered, f"{export_dir}: {'every' if covered else 'NOT every'} training index exported "
      f"({fmt})")
  for b in bad[:20]:
    add(False, b)
  if len(bad) > 20:
    add(False, f"... and {len(bad) - 20} more bad files in {export_dir}")
  if not bad:
    add(True, f"{export_dir}: {len(files)} file(s) match their SHA-256 and "
        + ("are their photos at their own sizes with the noise resized to each (PNG pixel for "
           "pixel, JPEG by size and PSNR)" if emani.get("resolution") == "original"
           else "equal clip(image + noise) in dataset order"))
  _check_visibility(add, emani, ds, noise, files, export_dir, fmt)


def _check_visibility(add, emani: dict, ds, noise, files: dict, export_dir: str, fmt) -> None:
  """One line: the export's PSNR / SSIM (mean, worst) and largest colour cast, recomputed from
  the images (a full-size export: from its files' records, each checked above) and compared
  with its manifest."""
  vis = emani.get("visibility")
  if not isinstance(vis, dict):
    add(False, f"{export_dir}: {EXPORT_MANIFEST} has no visibility record")
    return
  if emani.get("resolution") == "original":
    names = sorted(files, key=lambda r: files[r].get("index", -1))
    got = quality.summary([files[r].get("psnr_db", 0) for r in names],
                          [files[r].get("ssim", 0) for r in names],
                          photos.class_cast(ds, noise), names, photos.class_names(ds))
  else:
    names = png_names(ds) if fmt == "png" else [str(i) for i in range(ds.num_train)]
    got = photos.row_visibility(ds, noise, names)
  keys = ("psnr_db_mean", "psnr_db_worst", "ssim_mean", "ssim_worst")
  same = all(abs(float(got[k]) - float(vis.get(k, np.nan))) <= 1e-3 for k in keys) and (
      got["largest_colour_cast"] == vis.get("largest_colour_cast"))
  add(same, f"{export_dir}: visibility {quality.line(got)}"
      + ("" if same else f" (the manifest says otherwise: {vis.get('psnr_db_mean')} dB mean)"))


def _png_matches(path: str, index, ds, published: np.ndarray) -> bool:
  if not isinstance(index, int) or not 0 <= index < ds.num_train:
    return False
  try:
    return np.array_equal(read_png(path, ds.image_shape[2]), published[index])
  except Exception:  # not a readable image
    return False


def _contents(fmt, export_dir: str, ds, published, noise, indices) -> tuple[bool, str]:
  """(every index 0..N-1 exported exactly once in dataset order, a problem or ''), read
  back from the files themselves."""
  n = ds.num_train
  if fmt in ("png", "png-flat"):
    every = sorted(indices) == list(range(n))
    if fmt == "png-flat":
      extra = sorted(set(fs.listdir(export_dir)) - {EXPORT_MANIFEST, LABELS_CSV}
                     - {flat_name(i) for i in range(n)})
      if extra:
        return every, f"{export_dir}: files no index accounts for: {', '.join(extra[:5])}"
      with fs.open(os.path.join(export_dir, LABELS_CSV)) as f:
        if f.read().splitlines() != labels_csv_rows(ds):
          return every, f"{os.path.join(export_dir, LABELS_CSV)}: labels differ from the dataset's"
    return every, ""
  if fmt == "npy":
    for rel, (shape, dtype, block) in npy_specs(ds, published, noise).items():
      with fs.open(os.path.join(export_dir, rel), "rb") as f:
        if not _same_blocks(f, shape, dtype, block):
          return False, f"{os.path.join(export_dir, rel)}: differs from the run's arrays"
    return True, ""
  if fmt == "npz":
    with fs.open(os.path.join(export_dir, "protected.npz"), "rb") as raw, zipfile.ZipFile(raw) as z:
      for key, (shape, dtype, block) in npz_members(ds, published).items():
        if key + ".npy" not in z.namelist():
          return False, f"{export_dir}/protected.npz: has no {key}"
        with z.open(key + ".npy") as f:
          if not _same_blocks(f, shape, dtype, block, exact_dtype=key != "y_train"):
            return False, f"{export_dir}/protected.npz: {key} differs from clip(image + noise)"
    return True, ""
  if fmt == "tfds":
    start = 0
    for images, labels, index in read_tfds_blocks(export_dir, "train"):
      e = start + len(index)
      if not (e <= n and np.array_equal(index, np.arange(start, e))
              and np.array_equal(images, published[start:e])
              and np.array_equal(labels, ds.train_labels[start:e])):
        return False, f"{export_dir}: TFDS train split differs from clip(image + noise)"
      start = e
    ok = start == n
    return ok, "" if ok else f"{export_dir}: TFDS train split has {start} of {n} images"
  return False, f"{export_dir}: unknown export format {fmt!r}"


def _same_blocks(f, shape, dtype, block, exact_dtype: bool = True) -> bool:
  """Does the .npy stream in ``f`` hold (shape, dtype) equal to ``block(start, stop)``?"""
  got_shape, got_dtype, blocks = read_npy_blocks(f)
  if got_shape != tuple(shape) or (exact_dtype and got_dtype != dtype):
    return False
  start = 0
  for b in blocks:
    if not np.array_equal(b, block(start, start + len(b))):
      return False
    start += len(b)
  return True


def report(checks: list[tuple[bool, str]]) -> str:
  lines = [("PASS  " if ok else "FAIL  ") + msg for ok, msg in checks]
  failed = sum(not ok for ok, _ in checks)
  lines.append(f"{'OK' if not failed else 'FAILED'}: {len(checks) - failed} passed, {failed} failed")
  return "\n".join(lines)
