"""``verify``: check a run's artifacts (and optionally an export) without trusting them."""
from __future__ import annotations

import os

import numpy as np

from sem_jax import artifacts, noise as N
from sem_jax.data import fingerprint, protect
from sem_jax.datasets import dataset_for
from sem_jax.errors import SemJaxError
from sem_jax.export import (EXPORT_MANIFEST, LABELS_CSV, flat_name, labels_csv_rows,
                            npy_arrays, read_png, read_tfds)
from sem_jax.manifest import Manifest


def verify(workdir: str, export_dir: str | None = None) -> list[tuple[bool, str]]:
  """Return (passed, message) for every check; messages name the file they concern."""
  if not os.path.isdir(workdir):
    raise SemJaxError(f"noise directory not found: {workdir}")
  if export_dir is not None and not os.path.isdir(export_dir):
    raise SemJaxError(f"export directory not found: {export_dir}")
  checks: list[tuple[bool, str]] = []
  add = lambda ok, msg: checks.append((bool(ok), msg))
  try:
    man = Manifest(workdir, artifacts.read_json(os.path.join(workdir, artifacts.MANIFEST_FILE)))
  except SemJaxError as e:
    add(False, str(e))
    return checks
  mpath = man.path
  add(True, f"{mpath}: readable")
  files = man.noise_files()
  for path, _, _, want in files:
    if not os.path.exists(path):
      add(False, f"{path}: missing")
      continue
    same = artifacts.sha256_file(path) == want
    add(same, f"{path}: SHA-256 {'matches' if same else 'does NOT match'} the manifest"
        + ("" if same else " (file altered)"))
  try:
    noise = man.read_noise(check_sha=False)
  except SemJaxError as e:
    add(False, str(e))
    return checks
  npath = man.noise_location   # read without pickle; int8 (N, H, W, C) or it raised above
  eps = man.radius_levels
  m = N.max_abs_levels(noise)
  add(m <= eps, f"{npath}: max |noise| = {m} levels {'<=' if m <= eps else '>'} ε = {eps}")
  ds = dataset_for(man.config)
  add(noise.shape == ds.train_images.shape,
      f"{npath}: int8 {noise.shape}: {noise.shape[0]} rows for {ds.num_train} training indices "
      f"({'every index present' if noise.shape == ds.train_images.shape else 'SHAPE MISMATCH'})"
      + (f" in {len(files)} shards" if man.sharded else ""))
  if man.method == "imported":   # no final pass: the import checked every index instead
    src = man.raw.get("imported", {})
    add(src.get("sha256") and src.get("source"),
        f"{mpath}: imported from {src.get('source')} (SHA-256 {str(src.get('sha256'))[:12]}...)")
  else:
    add(man.raw.get("final_pass_regenerated") == ds.num_train,
        f"{mpath}: final pass regenerated {man.raw.get('final_pass_regenerated')} of "
        f"{ds.num_train}")
  same_data = fingerprint(ds)["sha256"] == man.dataset_sha256
  add(same_data, f"dataset {ds.name}: {'unchanged since' if same_data else 'CHANGED since'} "
      "generation")
  if export_dir is not None and noise.shape == ds.train_images.shape:
    _check_export(add, man, ds, noise, export_dir)
  return checks


def _check_export(add, man: Manifest, ds, noise: np.ndarray, export_dir: str) -> None:
  """The export checks: its manifest, every file's SHA-256 and contents, every index present."""
  epath = os.path.join(export_dir, EXPORT_MANIFEST)
  try:
    emani = artifacts.read_json(epath)
  except SemJaxError as e:
    add(False, str(e))
    return
  same_noise = emani.get("noise_sha256") == man.noise_sha256
  add(same_noise, f"{epath}: exported from this noise" if same_noise
      else f"{epath}: exported from a different noise")
  fmt = emani.get("format")
  published = protect(ds.train_images, noise)
  files = emani.get("files", {})
  bad, indices = [], []
  for rel, rec in sorted(files.items()):
    path = os.path.join(export_dir, rel)
    if not os.path.exists(path):
      bad.append(f"{path}: missing")
    elif artifacts.sha256_file(path) != rec.get("sha256"):
      bad.append(f"{path}: SHA-256 does not match {EXPORT_MANIFEST} (file altered)")
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
    add(True, f"{export_dir}: {len(files)} file(s) match their SHA-256 and equal clip(image + "
        "noise) in dataset order")


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
      extra = sorted(set(os.listdir(export_dir)) - {EXPORT_MANIFEST, LABELS_CSV}
                     - {flat_name(i) for i in range(n)})
      if extra:
        return every, f"{export_dir}: files no index accounts for: {', '.join(extra[:5])}"
      with open(os.path.join(export_dir, LABELS_CSV)) as f:
        if f.read().splitlines() != labels_csv_rows(ds):
          return every, f"{os.path.join(export_dir, LABELS_CSV)}: labels differ from the dataset's"
    return every, ""
  if fmt == "npy":
    want = npy_arrays(ds, published, noise)
    for rel, arr in want.items():
      got = np.load(os.path.join(export_dir, rel), allow_pickle=False)
      if got.dtype != arr.dtype or not np.array_equal(got, arr):
        return False, f"{os.path.join(export_dir, rel)}: differs from the run's arrays"
    return True, ""
  if fmt == "npz":
    with np.load(os.path.join(export_dir, "protected.npz"), allow_pickle=False) as z:
      ok = (np.array_equal(z["index"], np.arange(n)) and np.array_equal(z["x_train"], published)
            and np.array_equal(z["y_train"], ds.train_labels))
    return ok, "" if ok else f"{export_dir}/protected.npz: differs from clip(image + noise)"
  if fmt == "tfds":
    images, labels, index = read_tfds(export_dir, "train")
    ok = (np.array_equal(index, np.arange(n)) and np.array_equal(images, published)
          and np.array_equal(labels, ds.train_labels))
    return ok, "" if ok else f"{export_dir}: TFDS train split differs from clip(image + noise)"
  return False, f"{export_dir}: unknown export format {fmt!r}"


def report(checks: list[tuple[bool, str]]) -> str:
  lines = [("PASS  " if ok else "FAIL  ") + msg for ok, msg in checks]
  failed = sum(not ok for ok, _ in checks)
  lines.append(f"{'OK' if not failed else 'FAILED'}: {len(checks) - failed} passed, {failed} failed")
  return "\n".join(lines)
