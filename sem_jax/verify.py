"""``verify``: check a run's artifacts (and optionally an export) without trusting them."""
from __future__ import annotations

import os

import numpy as np

from sem_jax import artifacts, noise as N
from sem_jax.data import fingerprint, protect
from sem_jax.datasets import dataset_for
from sem_jax.errors import SemJaxError
from sem_jax.export import EXPORT_MANIFEST, read_png, read_tfds
from sem_jax.manifest import Manifest


def verify(workdir: str, export_dir: str | None = None) -> list[tuple[bool, str]]:
  """Return (passed, message) for every check; messages name the file they concern."""
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
  npath = man.noise_location
  if man.sharded:
    add(True, f"{npath}: {len(files)} shards cover rows 0..{noise.shape[0]} exactly once")
  add(True, f"{npath}: int8 {noise.shape}, loaded without pickle")
  eps = man.radius_levels
  m = N.max_abs_levels(noise)
  add(m <= eps, f"{npath}: max |noise| = {m} levels {'<=' if m <= eps else '>'} ε = {eps}")
  add(True, f"{npath}: finite (integer dtype)")
  ds = dataset_for(man.config)
  add(noise.shape == ds.train_images.shape,
      f"{npath}: {noise.shape[0]} rows for {ds.num_train} training indices "
      f"({'every index present' if noise.shape == ds.train_images.shape else 'SHAPE MISMATCH'})")
  add(man.raw.get("final_pass_regenerated") == ds.num_train,
      f"{mpath}: final pass regenerated {man.raw.get('final_pass_regenerated')} of {ds.num_train}")
  same_data = fingerprint(ds)["sha256"] == man.dataset_sha256
  add(same_data, f"dataset {ds.name}: {'unchanged since' if same_data else 'CHANGED since'} "
      "generation")
  if export_dir is not None and noise.shape == ds.train_images.shape:
    _check_export(add, man, ds, noise, export_dir)
  return checks


def _check_export(add, man: Manifest, ds, noise: np.ndarray, export_dir: str) -> None:
  """The export checks: its manifest, every file's SHA-256 and pixels, every index present."""
  epath = os.path.join(export_dir, EXPORT_MANIFEST)
  try:
    emani = artifacts.read_json(epath)
  except SemJaxError as e:
    add(False, str(e))
    return
  same_noise = emani.get("noise_sha256") == man.noise_sha256
  add(same_noise, f"{epath}: exported from this noise" if same_noise
      else f"{epath}: exported from a different noise.npy")
  published = protect(ds.train_images, noise)
  bad = []
  for rel, rec in sorted(emani.get("files", {}).items()):
    path = os.path.join(export_dir, rel)
    if not os.path.exists(path):
      bad.append(f"{path}: missing")
      continue
    if artifacts.sha256_file(path) != rec.get("sha256"):
      bad.append(f"{path}: SHA-256 does not match {EXPORT_MANIFEST} (file altered)")
      continue
    try:
      if emani.get("format") == "png":
        ok = np.array_equal(read_png(path, ds.image_shape[2]), published[rec["index"]])
      elif emani.get("format") == "tfds":
        ok = True   # contents are compared below, after every file's SHA-256
      else:
        with np.load(path, allow_pickle=False) as z:
          ok = np.array_equal(z["x_train"], published) and np.array_equal(z["y_train"], ds.train_labels)
    except Exception as e:  # unreadable file
      bad.append(f"{path}: unreadable ({type(e).__name__})")
      continue
    if not ok:
      bad.append(f"{path}: pixels differ from clip(image + noise)")
  n = len(emani.get("files", {}))
  if emani.get("format") == "tfds" and not bad:
    try:
      images, labels, index = read_tfds(export_dir, "train")
      ok = (np.array_equal(index, np.arange(ds.num_train)) and np.array_equal(images, published)
            and np.array_equal(labels, ds.train_labels))
    except Exception as e:  # unreadable dataset
      bad.append(f"{export_dir}: TFDS dataset unreadable ({type(e).__name__}: {e})")
    else:
      if not ok:
        bad.append(f"{export_dir}: TFDS train split differs from clip(image + noise) in dataset order")
  covered = (sorted(r["index"] for r in emani["files"].values()) == list(range(ds.num_train))
             if emani.get("format") == "png" else n >= 1)
  add(covered, f"{export_dir}: {'every' if covered else 'NOT every'} training index exported")
  for b in bad[:20]:
    add(False, b)
  if len(bad) > 20:
    add(False, f"... and {len(bad) - 20} more bad files in {export_dir}")
  if not bad:
    add(True, f"{export_dir}: {n} file(s) match their SHA-256 and equal clip(image + noise)")


def report(checks: list[tuple[bool, str]]) -> str:
  lines = [("PASS  " if ok else "FAIL  ") + msg for ok, msg in checks]
  failed = sum(not ok for ok, _ in checks)
  lines.append(f"{'OK' if not failed else 'FAILED'}: {len(checks) - failed} passed, {failed} failed")
  return "\n".join(lines)
