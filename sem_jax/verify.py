"""``verify``: check a run's artifacts (and optionally an export) without trusting them."""
from __future__ import annotations

import math
import os

import numpy as np

from sem_jax import artifacts
from sem_jax.config import from_dict
from sem_jax.data import protect
from sem_jax.errors import SemJaxError


def verify(workdir: str, export_dir: str | None = None) -> list[tuple[bool, str]]:
  """Return (passed, message) for every check; messages name the file they concern."""
  from sem_jax.export import EXPORT_MANIFEST, read_png
  from sem_jax.generate import data_fingerprint, dataset_for
  checks: list[tuple[bool, str]] = []
  add = lambda ok, msg: checks.append((bool(ok), msg))
  mpath = os.path.join(workdir, artifacts.MANIFEST_FILE)
  npath = os.path.join(workdir, artifacts.NOISE_FILE)
  try:
    manifest = artifacts.read_json(mpath)
  except SemJaxError as e:
    add(False, str(e))
    return checks
  add(True, f"{mpath}: readable")
  files = artifacts.noise_files(workdir, manifest)
  for path, _, _, want in files:
    if not os.path.exists(path):
      add(False, f"{path}: missing")
      continue
    same = artifacts.sha256_file(path) == want
    add(same, f"{path}: SHA-256 {'matches' if same else 'does NOT match'} the manifest"
        + ("" if same else " (file altered)"))
  try:
    noise = artifacts.read_noise(workdir, manifest, check_sha=False)
  except SemJaxError as e:
    add(False, str(e))
    return checks
  if manifest.get("noise_format", "npy") == "shards":
    npath = os.path.join(workdir, artifacts.NOISE_SHARD_DIR)
    add(True, f"{npath}: {len(files)} shards cover rows 0..{noise.shape[0]} exactly once")
  add(True, f"{npath}: int8 {noise.shape}, loaded without pickle")
  cfg = from_dict(manifest.get("config", {}))
  eps = math.floor(cfg.noise_radius)
  m = max(-int(noise.min()), int(noise.max())) if noise.size else 0
  add(m <= eps, f"{npath}: max |noise| = {m} levels {'<=' if m <= eps else '>'} ε = {eps}")
  add(True, f"{npath}: finite (integer dtype)")
  ds = dataset_for(cfg)
  add(noise.shape == ds.train_images.shape,
      f"{npath}: {noise.shape[0]} rows for {ds.num_train} training indices "
      f"({'every index present' if noise.shape == ds.train_images.shape else 'SHAPE MISMATCH'})")
  add(manifest.get("final_pass_regenerated") == ds.num_train,
      f"{mpath}: final pass regenerated {manifest.get('final_pass_regenerated')} of {ds.num_train}")
  fp = data_fingerprint(ds)["sha256"]
  add(fp == manifest.get("dataset", {}).get("sha256"),
      f"dataset {ds.name}: {'unchanged since' if fp == manifest.get('dataset', {}).get('sha256') else 'CHANGED since'} generation")
  if export_dir is None or noise.shape != ds.train_images.shape:
    return checks
  epath = os.path.join(export_dir, EXPORT_MANIFEST)
  try:
    emani = artifacts.read_json(epath)
  except SemJaxError as e:
    add(False, str(e))
    return checks
  add(emani.get("noise_sha256") == manifest.get("noise_sha256"),
      f"{epath}: exported from this noise" if emani.get("noise_sha256") == manifest.get(
          "noise_sha256") else f"{epath}: exported from a different noise.npy")
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
    from sem_jax.export import read_tfds
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
  return checks


def report(checks: list[tuple[bool, str]]) -> str:
  lines = [("PASS  " if ok else "FAIL  ") + msg for ok, msg in checks]
  failed = sum(not ok for ok, _ in checks)
  lines.append(f"{'OK' if not failed else 'FAILED'}: {len(checks) - failed} passed, {failed} failed")
  return "\n".join(lines)
