"""The artifact contract of a finished generate run: its ``manifest.json`` and noise table.

Writers: [`manifest_record`][manifest_record] (the one manifest writer, for generated and imported noise) and
[`write_noise_table`][write_noise_table] (``noise.npy`` by process 0, or one shard per device written by its
own process). Readers: [`read_manifest`][read_manifest] and [`load_run`][load_run], used by ``export``,
``verify``, ``evaluate`` and the studies; no other module reads a manifest's keys. Derived
quantities (ε in levels, the generation config) are properties of [`Manifest`][Manifest].
Noise files are int8 .npy (pixel levels), never pickled.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import jax
import numpy as np

import sem_jax
from sem_jax.core.crafting import budgets
from sem_jax.core.units import whole_levels
from sem_jax.data import rows as R
from sem_jax.data.dataset import Dataset, fingerprint
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs
from sem_jax.run import sharding
from sem_jax.run.config import GenerateConfig, from_dict
from sem_jax.run.inputs import dataset_for

NOISE_FILE = "noise.npy"
NOISE_SHARD_DIR = "noise"       # noise_format "shards": noise/noise-START-STOP.npy
MANIFEST_FILE = "manifest.json"


@dataclasses.dataclass(frozen=True)
class Manifest:
  """A finished run's manifest.json (``raw``) read from ``workdir``."""
  workdir: str
  raw: dict

  @property
  def path(self) -> str:
    return os.path.join(self.workdir, MANIFEST_FILE)

  @property
  def method(self) -> str:
    return self.raw.get("method", "?")

  @property
  def config(self) -> GenerateConfig:
    return from_dict(self.raw.get("config", {}))

  @property
  def radius_levels(self) -> int:
    """ε in whole pixel levels: the bound every stored noise value satisfies."""
    return whole_levels(self.config.noise_radius)

  @property
  def budget(self) -> dict:
    """The budget the method declared ([`sem_jax.core.crafting.budgets`][sem_jax.core.crafting.budgets]); manifests without one
    are L∞ at ε."""
    return self.raw.get("budget") or budgets.linf(self.radius_levels)

  @property
  def noise_shape(self) -> tuple[int, ...]:
    return tuple(int(v) for v in self.raw.get("noise_shape", ()))

  @property
  def noise_sha256(self) -> str | None:
    return self.raw.get("noise_sha256")

  @property
  def dataset_sha256(self) -> str | None:
    return self.raw.get("dataset", {}).get("sha256")

  @property
  def noise_max_abs(self) -> int:
    return int(self.raw.get("noise_max_abs", 0))

  @property
  def wall_time_s(self) -> float:
    return float(self.raw.get("wall_time_s", 0.0))

  @property
  def surrogate_clean_test_accuracy(self) -> float | None:
    return self.raw.get("surrogate_clean_test_accuracy")

  @property
  def surrogate_robust_test_accuracy(self) -> float | None:
    return self.raw.get("surrogate_robust_test_accuracy")

  @property
  def sharded(self) -> bool:
    return self.raw.get("noise_format", "npy") == "shards"

  @property
  def noise_location(self) -> str:
    """noise.npy, or the shard directory: where verify's messages point."""
    return os.path.join(self.workdir, NOISE_SHARD_DIR if self.sharded
                        else NOISE_FILE)

  def noise_files(self) -> list[tuple[str, int, int, str]]:
    return noise_files(self.workdir, self.raw)

  def read_noise(self, check_sha: bool = True, mmap: bool = False):
    return read_noise(self.workdir, self.raw, check_sha, mmap)


def finished_manifest(run) -> dict:
  """The manifest of the finished run in ``run.workdir`` (a [`sem_jax.run.loop.Run`][sem_jax.run.loop.Run]), its
  noise proven intact first."""
  manifest = run.finished_result(lambda m: Manifest(run.workdir, m).read_noise())
  run.say(f"{run.workdir} already holds the finished run (noise.npy sha256 "
          f"{manifest.get('noise_sha256', '?')[:12]}...); nothing to do")
  return manifest


def read_manifest(workdir: str, what: str = "run", hint: str = "") -> Manifest:
  """The manifest of the finished generate run in ``workdir`` (one-line errors; ``hint`` is
  appended to the missing-directory error)."""
  if not fs.isdir(workdir):
    raise SemJaxError(f"noise directory not found: {workdir}{hint}")
  path = os.path.join(workdir, MANIFEST_FILE)
  if not fs.exists(path):
    raise SemJaxError(f"{workdir} holds no finished {what} ({MANIFEST_FILE} missing)")
  return Manifest(workdir, atomic.read_json(path))


@dataclasses.dataclass(frozen=True)
class FinishedRun:
  """A finished generation run: its manifest, dataset and noise table (int8, pixel levels)."""
  manifest: Manifest
  dataset: Dataset
  noise: np.ndarray

  @property
  def config(self) -> GenerateConfig:
    return self.manifest.config


def load_run(workdir: str, dataset: Dataset | None = None, what: str = "run",
             hint: str = "") -> FinishedRun:
  """Load a finished run and check that its noise fits ``dataset`` (default: the run's own).

  Checks, each a one-line SemJaxError: the manifest exists, the noise shape equals the
  training images', the images are those the noise was made for (dataset SHA-256), and
  every noise file matches its SHA-256 in the manifest.
  """
  m = read_manifest(workdir, what, hint)
  ds = dataset if dataset is not None else dataset_for(m.config)
  if m.noise_shape != ds.train_images.shape:
    raise SemJaxError(f"noise shape {m.noise_shape} does not match the {ds.name} training images "
                      f"{ds.train_images.shape}")
  if m.dataset_sha256 and m.dataset_sha256 != fingerprint(ds)["sha256"]:
    raise SemJaxError(f"the noise in {workdir} was generated for different training images "
                      f"than this {ds.name} dataset (dataset SHA-256 mismatch)")
  noise = m.read_noise(mmap=True)   # read a block at a time by its users, never held whole
  if tuple(noise.shape) != ds.train_images.shape:
    raise SemJaxError(f"noise shape {noise.shape} does not match the {ds.name} training images "
                      f"{ds.train_images.shape}")
  return FinishedRun(m, ds, noise)


# ----------------------------------------------------------------------------- writing
def manifest_record(method: str, cfg: GenerateConfig, ds: Dataset, data_sha256: str,
                    stored: dict, **fields) -> dict:
  """The manifest of a noise workdir (generated or imported): what made it, for which data
  (``data_sha256``: its training set's fingerprint), and where its noise lies (``stored``:
  [`write_noise_table`][write_noise_table]'s fields), plus ``fields``."""
  return {
      "method": method, "config": cfg.to_dict(), "seed": cfg.seed,
      "dataset": {"name": ds.name, "num_train": ds.num_train,
                  "num_test": int(ds.test_images.shape[0]), "image_shape": list(ds.image_shape),
                  "num_classes": ds.num_classes, "sha256": data_sha256,
                  "order": ds.order, "num_fit": len(ds.fit_indices)},
      **stored, "noise_shape": [ds.num_train, *ds.image_shape], "noise_dtype": "int8",
      "noise_units": "pixel levels", "sem_jax_version": sem_jax.__version__, **fields,
  }


def write_noise_table(workdir: str, table: jax.Array, num: int, eps: int, fmt: str) -> dict:
  """Write rows [0, num) of the device table; return the manifest's noise fields.

  ``npy``: process 0 gathers the table and writes noise.npy. ``shards``: every process
  writes its own devices' rows ([`write_noise_shards`][write_noise_shards]). Both check |noise| <= eps.
  """
  if fmt == "shards":
    shards = write_noise_shards(workdir, table, num, eps)
    return {"noise_format": "shards", "noise_shards": shards,
            "noise_sha256": shards_digest(shards),
            "noise_max_abs": max(s["max_abs"] for s in shards)}
  noise = sharding.to_host(table)[:num]
  budgets.check_noise(noise, eps)
  stored = {"noise_format": "npy", "noise_file": NOISE_FILE,
            "noise_max_abs": budgets.max_abs_levels(noise)}
  if jax.process_index() == 0:
    stored["noise_sha256"] = save_noise(os.path.join(workdir, NOISE_FILE),
                                                  noise)
  return stored


def write_noise_shards(workdir: str, table: jax.Array, num: int, eps: int) -> list[dict]:
  """Every process writes the rows [0, num) of its own devices' shards of the table.

  One device shard at a time is copied to host memory, so the table is never
  gathered on one host. Files: noise/noise-START-STOP.npy (atomic). Returns, on
  every process, the list of all shards {file, start, stop, sha256, max_abs} sorted
  by start (exchanged through small per-process JSON files on the shared workdir).
  """
  d = os.path.join(workdir, NOISE_SHARD_DIR)
  if jax.process_index() == 0:
    fs.makedirs(d)
    for f in fs.listdir(d):   # leftovers of an earlier attempt with another device layout
      fs.remove(os.path.join(d, f))
  sharding.sync("sem_jax_noise_shards_clean")
  mine = []
  for sh in table.addressable_shards:
    if sh.replica_id != 0:
      continue
    rows = sh.index[0]
    start, stop = rows.start or 0, min(rows.stop if rows.stop is not None else table.shape[0], num)
    if start >= stop:
      continue
    block = np.asarray(sh.data)[:stop - start]
    budgets.check_noise(block, eps)
    name = shard_name(start, stop)
    sha = save_noise(os.path.join(d, name), block)
    mine.append({"file": f"{NOISE_SHARD_DIR}/{name}", "start": int(start),
                 "stop": int(stop), "sha256": sha, "max_abs": budgets.max_abs_levels(block)})
    del block
  atomic.write_json(os.path.join(d, f"shards-process{jax.process_index()}.json"), mine)
  sharding.sync("sem_jax_noise_shards_written")
  shards = []
  for p in range(jax.process_count()):
    shards += atomic.read_json(os.path.join(d, f"shards-process{p}.json"))
  shards.sort(key=lambda s_: s_["start"])
  edges = [(s_["start"], s_["stop"]) for s_ in shards]
  if [a for a, _ in edges] != [0] + [b for _, b in edges][:-1] or edges[-1][1] != num:
    raise RuntimeError(f"noise shards {edges} do not cover rows 0..{num} exactly once")
  return shards


NOISE_DTYPES = ("int8", "int16")   # int16: budgets that move a pixel by up to 255 levels (ops)


def save_noise(path: str, noise: np.ndarray) -> str:
  """Write int8 (or int16) noise as .npy atomically; return its SHA-256 hex digest."""
  if noise.dtype.name not in NOISE_DTYPES:
    raise ValueError(f"noise must be int8 or int16, got {noise.dtype}")
  atomic.atomic_write(path, lambda f: np.save(f, noise, allow_pickle=False),
                     needed=int(noise.nbytes))
  return atomic.sha256_file(path)


def load_noise(path: str, mmap: bool = False, dtype: str = "int8") -> np.ndarray:
  """Load a noise table of ``dtype`` without pickle (``mmap``: memory-mapped, read-only);
  errors name the file; a URL is always read into memory)."""
  try:
    if fs.is_url(path):
      with fs.open(path, "rb") as f:
        noise = np.load(f, allow_pickle=False)
    else:
      noise = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
  except (OSError, ValueError, EOFError) as e:
    raise SemJaxError(f"cannot read noise file {path}: {e}") from None
  if noise.dtype.name != dtype or noise.ndim != 4:
    raise SemJaxError(f"{path}: expected {dtype} (N, H, W, C), got {noise.dtype} {noise.shape}")
  return noise


def shard_name(start: int, stop: int) -> str:
  """The file of the noise rows [start, stop) of a sharded table."""
  return f"noise-{start:010d}-{stop:010d}.npy"


def shards_digest(shards: list[dict]) -> str:
  """The noise_sha256 of a sharded table: SHA-256 over the ordered (start, stop, file SHA-256)."""
  blob = json.dumps([[s["start"], s["stop"], s["sha256"]] for s in shards])
  return hashlib.sha256(blob.encode()).hexdigest()


def noise_files(workdir: str, manifest: dict) -> list[tuple[str, int, int, str]]:
  """(path, start row, stop row, expected SHA-256) of every file holding the run's noise."""
  shape = manifest.get("noise_shape") or [0]
  if manifest.get("noise_format", "npy") == "npy":
    return [(os.path.join(workdir, NOISE_FILE), 0, int(shape[0]), manifest.get("noise_sha256"))]
  shards = sorted(manifest.get("noise_shards", []), key=lambda s: s["start"])
  return [(os.path.join(workdir, s["file"]), int(s["start"]), int(s["stop"]), s["sha256"])
          for s in shards]


def read_noise(workdir: str, manifest: dict, check_sha: bool = True, mmap: bool = False):
  """The run's noise table (N, H, W, C), int8 (int16 where the manifest says so), from
  noise.npy or from its shards.

  Shards are read one at a time into one preallocated table, so the table is in
  host memory once (plus one shard). ``mmap``: nothing is read into memory: noise.npy
  memory-mapped, or the memory-mapped shards as one ``rows.Concat`` table (read a block
  at a time by export, verify and evaluate). Every file's SHA-256 is checked against the
  manifest (streamed) unless ``check_sha`` is False; errors name the file.
  """
  files = noise_files(workdir, manifest)
  if manifest.get("noise_format", "npy") == "npy":
    path, _, _, want = files[0]
    if not fs.exists(path):
      raise SemJaxError(f"noise file missing: {path}")
    if check_sha and atomic.sha256_file(path) != want:
      raise SemJaxError(f"{path} does not match the SHA-256 in its manifest (altered or corrupt); "
                        "run `run.py verify` on it")
    return load_noise(path, mmap, manifest.get("noise_dtype", "int8"))
  shape = tuple(int(v) for v in manifest["noise_shape"])
  if [(a, b) for _, a, b, _ in files] != list(zip([0] + [b for _, _, b, _ in files][:-1],
                                                  [b for _, _, b, _ in files])) or (
      files and files[-1][2] != shape[0]) or (not files and shape[0]):
    raise SemJaxError(f"{workdir}: the noise shards listed in the manifest do not cover rows "
                      f"0..{shape[0]} exactly once")
  out = None if mmap else np.empty(shape, np.int8)
  parts = []
  for path, start, stop, want in files:
    if not fs.exists(path):
      raise SemJaxError(f"noise shard missing: {path}")
    if check_sha and atomic.sha256_file(path) != want:
      raise SemJaxError(f"{path} does not match the SHA-256 in its manifest (altered or corrupt); "
                        "run `run.py verify` on it")
    rows = load_noise(path, mmap)
    if rows.shape != (stop - start, *shape[1:]):
      raise SemJaxError(f"{path}: shape {rows.shape}, expected {(stop - start, *shape[1:])}")
    if mmap:
      parts.append(rows)
    else:
      out[start:stop] = rows
  if mmap:
    return R.Concat(parts, np.int8)
  return out
