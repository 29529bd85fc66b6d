"""Orbax checkpoints of the full generation state, verified on restore.

A checkpoint step holds two orbax items: ``state`` (surrogate params,
batch_stats, optimizer state, step, the run's PRNG key data and the sharded int8
noise table) and ``meta`` (JSON: run fingerprint, step, elapsed time). After
orbax commits a step, process 0 writes ``sem_jax_integrity.json`` into it: the
SHA-256 and size of every file. Restore walks the steps newest first and skips
any whose integrity file is missing (killed before it was written) or whose
files do not match it (truncated, altered), falling back to the previous intact
one; only those damaged steps are moved to ``checkpoints_damaged/``. An intact step
that orbax cannot restore (I/O error, another version, a structure or sharding
mismatch) is a one-line error that moves nothing. It also checks the fingerprint
(same config and dataset) and every array's shape and dtype: orbax alone restores
whatever shapes were saved.
"""
from __future__ import annotations

import hashlib
import os
import time
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from sem_jax import artifacts
from sem_jax.errors import SemJaxError

INTEGRITY_FILE = "sem_jax_integrity.json"


def _leaf_sig(x) -> tuple:
  return (tuple(np.shape(x)), str(x.dtype))


def _file_digests(root: str) -> dict[str, list]:
  out = {}
  for d, _, files in os.walk(root):
    for f in sorted(files):
      if f == INTEGRITY_FILE:
        continue
      p = os.path.join(d, f)
      h = hashlib.sha256()
      with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
          h.update(chunk)
      out[os.path.relpath(p, root)] = [os.path.getsize(p), h.hexdigest()]
  return out


def verify_step_dir(d: str) -> str | None:
  """None if the checkpoint step directory ``d`` matches its integrity record, else what is
  wrong (naming a file)."""
  rec_path = os.path.join(d, INTEGRITY_FILE)
  if not os.path.isdir(d):
    return f"is missing ({d})"
  if not os.path.exists(rec_path):
    return "has no integrity record (interrupted while saving)"
  try:
    want = artifacts.read_json(rec_path)["files"]
  except (SemJaxError, KeyError, TypeError):
    return f"has an unreadable integrity record {rec_path}"
  have = _file_digests(d)
  for rel, (size, digest) in sorted(want.items()):
    if rel not in have:
      return f"is missing file {os.path.join(d, rel)}"
    if have[rel][0] != size:
      return f"has a truncated or resized file {os.path.join(d, rel)}"
    if have[rel][1] != digest:
      return f"has an altered file {os.path.join(d, rel)} (SHA-256 mismatch)"
  return None


class Checkpoints:
  """Saves and restores {state, meta} under ``directory`` with orbax (all processes call)."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._mngr = ocp.CheckpointManager(
        self.directory, item_names=("state", "meta"),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def all_steps(self) -> list[int]:
    return sorted(self._mngr.all_steps())

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Save, wait for the commit, then record file digests (process 0)."""
    self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                  meta=ocp.args.JsonSave(meta)), force=True)
    self._mngr.wait_until_finished()
    if jax.process_index() == 0:
      d = self.step_dir(step)
      artifacts.write_json(os.path.join(d, INTEGRITY_FILE), {"step": step, "files": _file_digests(d)})

  def verify(self, step: int) -> str | None:
    """None if the step's files match its integrity record, else what is wrong (naming a file)."""
    return verify_step_dir(self.step_dir(step))

  def restore_latest(self, target: Any, fingerprint: str, log: Callable[[str], None] = print,
                     accept: tuple = ()) -> tuple[Any, dict] | None:
    """Restore the newest intact step into the structure (and shardings) of ``target``.

    Returns None when there is no checkpoint. Raises SemJaxError when checkpoints
    exist but none is intact, or when they belong to another config or shapes.
    """
    steps = self.all_steps()
    problems, bad = [], []
    for step in reversed(steps):
      why = self.verify(step)
      if why is None:
        try:
          found = self._restore(step, target, (fingerprint, *accept))
        except _Unreadable as e:   # intact files that orbax cannot read here: not damage
          raise SemJaxError(
              f"checkpoint step {step} in {self.directory} matches its integrity record but "
              f"cannot be restored {e} (an I/O error, or another orbax / jax version or device "
              "layout?); nothing was moved") from None
        self._quarantine(bad)
        return found
      problems.append(f"step {step} {why}")
      bad.append(step)
      log(f"warning: checkpoint step {step} {why}; falling back to an older checkpoint")
    if steps:
      raise SemJaxError(f"no intact checkpoint in {self.directory} ({'; '.join(problems)}); "
                        "delete that directory to restart the run from step 0")
    return None

  def _quarantine(self, steps: list[int]) -> None:
    """Move damaged steps aside (kept for inspection, never deleted) so the run can rewrite them."""
    if steps and jax.process_index() == 0:
      dest = os.path.join(os.path.dirname(self.directory), "checkpoints_damaged")
      os.makedirs(dest, exist_ok=True)
      for step in steps:
        os.replace(self.step_dir(step), os.path.join(dest, f"{step}-{time.strftime('%Y%m%dT%H%M%S')}"))
    if steps:
      if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("sem_jax_quarantine")
      self._mngr.reload()

  def _restore(self, step: int, target: Any, fingerprints: tuple) -> tuple[Any, dict]:
    where = self.step_dir(step)
    try:
      meta = self._mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:
      raise _Unreadable(f"({_first_line(e)})") from None
    if meta.get("fingerprint") not in fingerprints:
      raise SemJaxError(f"checkpoint {where} belongs to a different config or dataset "
                        "(fingerprint mismatch); use a new workdir")
    try:
      restored = self._mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target)))["state"]
    except Exception as e:
      raise _Unreadable(f"({_first_line(e)})") from None
    if jax.tree.structure(target) != jax.tree.structure(restored) or (
        jax.tree.map(_leaf_sig, target) != jax.tree.map(_leaf_sig, restored)):
      raise SemJaxError(f"checkpoint {where} does not match the requested model or dataset shapes")
    return restored, meta

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()


class _Unreadable(Exception):
  pass


def _first_line(e: BaseException) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else type(e).__name__
