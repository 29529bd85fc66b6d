"""The artifact contract of a finished generate run: its ``manifest.json`` and noise table.

Writers: :func:`write_noise_table` (``noise.npy`` by process 0, or one shard per device
written by its own process). Readers: :func:`read_manifest` and :func:`load_run`, used by
``export``, ``verify``, ``evaluate`` and the efficacy benchmark; no other module reads a
manifest's keys. Derived quantities (ε in levels, the generation config) are properties
of :class:`Manifest`, computed in one place.
"""
from __future__ import annotations

import dataclasses
import math
import os

import jax
import numpy as np

from sem_jax import artifacts, fs, noise as N, sharding
from sem_jax.config import GenerateConfig, from_dict
from sem_jax.data import Dataset, fingerprint
from sem_jax.datasets import dataset_for
from sem_jax.errors import SemJaxError


@dataclasses.dataclass(frozen=True)
class Manifest:
  """A finished run's manifest.json (``raw``) read from ``workdir``."""
  workdir: str
  raw: dict

  @property
  def path(self) -> str:
    return os.path.join(self.workdir, artifacts.MANIFEST_FILE)

  @property
  def method(self) -> str:
    return self.raw.get("method", "?")

  @property
  def config(self) -> GenerateConfig:
    return from_dict(self.raw.get("config", {}))

  @property
  def radius_levels(self) -> int:
    """ε in whole pixel levels: the bound every stored noise value satisfies."""
    return radius_levels(self.config.noise_radius)

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
    return os.path.join(self.workdir, artifacts.NOISE_SHARD_DIR if self.sharded
                        else artifacts.NOISE_FILE)

  def noise_files(self) -> list[tuple[str, int, int, str]]:
    return artifacts.noise_files(self.workdir, self.raw)

  def read_noise(self, check_sha: bool = True, mmap: bool = False):
    return artifacts.read_noise(self.workdir, self.raw, check_sha, mmap)


def radius_levels(noise_radius: float) -> int:
  """ε in whole pixel levels, floor(ρu): the int8 bound after quantisation."""
  return int(math.floor(noise_radius))


def read_manifest(workdir: str, what: str = "run", hint: str = "") -> Manifest:
  """The manifest of the finished generate run in ``workdir`` (one-line errors; ``hint`` is
  appended to the missing-directory error)."""
  if not fs.isdir(workdir):
    raise SemJaxError(f"noise directory not found: {workdir}{hint}")
  path = os.path.join(workdir, artifacts.MANIFEST_FILE)
  if not fs.exists(path):
    raise SemJaxError(f"{workdir} holds no finished {what} ({artifacts.MANIFEST_FILE} missing)")
  return Manifest(workdir, artifacts.read_json(path))


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
def write_noise_table(workdir: str, table: jax.Array, num: int, eps: int, fmt: str) -> dict:
  """Write rows [0, num) of the device table; return the manifest's noise fields.

  ``npy``: process 0 gathers the table and writes noise.npy. ``shards``: every process
  writes its own devices' rows (:func:`write_noise_shards`). Both check |noise| <= eps.
  """
  if fmt == "shards":
    shards = write_noise_shards(workdir, table, num, eps)
    return {"noise_format": "shards", "noise_shards": shards,
            "noise_sha256": artifacts.shards_digest(shards),
            "noise_max_abs": max(s["max_abs"] for s in shards)}
  noise = sharding.to_host(table)[:num]
  N.check_noise(noise, eps)
  stored = {"noise_format": "npy", "noise_file": artifacts.NOISE_FILE,
            "noise_max_abs": N.max_abs_levels(noise)}
  if jax.process_index() == 0:
    stored["noise_sha256"] = artifacts.save_noise(os.path.join(workdir, artifacts.NOISE_FILE),
                                                  noise)
  return stored


def write_noise_shards(workdir: str, table: jax.Array, num: int, eps: int) -> list[dict]:
  """Every process writes the rows [0, num) of its own devices' shards of the table.

  One device shard at a time is copied to host memory, so the table is never
  gathered on one host. Files: noise/noise-START-STOP.npy (atomic). Returns, on
  every process, the list of all shards {file, start, stop, sha256, max_abs} sorted
  by start (exchanged through small per-process JSON files on the shared workdir).
  """
  d = os.path.join(workdir, artifacts.NOISE_SHARD_DIR)
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
    N.check_noise(block, eps)
    name = artifacts.shard_name(start, stop)
    sha = artifacts.save_noise(os.path.join(d, name), block)
    mine.append({"file": f"{artifacts.NOISE_SHARD_DIR}/{name}", "start": int(start),
                 "stop": int(stop), "sha256": sha, "max_abs": N.max_abs_levels(block)})
    del block
  artifacts.write_json(os.path.join(d, f"shards-process{jax.process_index()}.json"), mine)
  sharding.sync("sem_jax_noise_shards_written")
  shards = []
  for p in range(jax.process_count()):
    shards += artifacts.read_json(os.path.join(d, f"shards-process{p}.json"))
  shards.sort(key=lambda s_: s_["start"])
  edges = [(s_["start"], s_["stop"]) for s_ in shards]
  if [a for a, _ in edges] != [0] + [b for _, b in edges][:-1] or edges[-1][1] != num:
    raise RuntimeError(f"noise shards {edges} do not cover rows 0..{num} exactly once")
  return shards
