"""Orbax checkpoints of the full generation state, verified on restore.

A checkpoint step holds two orbax items: ``state`` (surrogate params,
batch_stats, optimizer state, step, the run's PRNG key data and the sharded int8
noise table) and ``meta`` (JSON: run fingerprint, step, elapsed time). After
orbax commits a step, every process hashes the files it wrote (orbax puts process i's
array data under ``ocdbt.process_i/``; everything else is process 0's) in a background
thread, while training goes on, and writes their SHA-256 and size as its integrity record
(``sem_jax_integrity.json`` for process 0, which also names the process count;
``sem_jax_integrity.<i>.json`` for the others). So no host re-reads the table: on the
ImageNet subset each of P hosts hashes ~25/P GB once per checkpoint, off the critical
path. The next save (and close) first waits for that hashing, so at most the newest step
lacks its records, and with max_checkpoints >= 2 an intact one always remains. Restore
(each process checks its own files; the verdict is shared) walks the steps newest first
and skips
any whose integrity file is missing (killed before it was written) or whose
files do not match it (truncated, altered), falling back to the previous intact
one; only those damaged steps are moved to ``checkpoints_damaged/``. An intact step
that orbax cannot restore (I/O error, another version, a structure or sharding
mismatch) is a one-line error that moves nothing. It also checks the fingerprint
(same config and dataset) and every array's shape and dtype: orbax alone restores
whatever shapes were saved.
"""
from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import sys
import threading
import time
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs
from sem_jax.run import sharding

INTEGRITY_FILE = "sem_jax_integrity.json"
CHECKPOINT_DIR = "checkpoints"   # a run's checkpoints, under its workdir


def _orbax_path(directory: str) -> str:
  """The directory as orbax is given it (the same name; tests of URL workdirs redirect it,
  as offline nothing can serve orbax's tensorstore a bucket)."""
  return directory


def _leaf_sig(x) -> tuple:
  return (tuple(np.shape(x)), str(x.dtype))


def _owner(rel: str) -> int:
  """The process that wrote a checkpoint file: ocdbt.process_<i>/... (and array_metadatas/
  process_<i>) is process i's, the rest 0's."""
  for part in rel.split("/"):
    if part.startswith(("ocdbt.process_", "process_")) and part.rsplit("_", 1)[-1].isdigit():
      return int(part.rsplit("_", 1)[-1])
  return 0


def _record_name(process: int) -> str:
  return INTEGRITY_FILE if process == 0 else f"sem_jax_integrity.{process}.json"


def _file_digests(root: str, owner: int | None = None) -> dict[str, list]:
  """{relative path: [size, SHA-256]} of the files under ``root`` (those ``owner`` wrote)."""
  out = {}
  for d, _, files in fs.walk(root):
    for f in sorted(files):
      if f.startswith("sem_jax_integrity"):
        continue
      p = os.path.join(d, f)
      rel = fs.relpath(p, root)
      if owner is not None and _owner(rel) != owner:
        continue
      out[rel] = [fs.getsize(p), atomic.sha256_file(p)]
  return out



def write_integrity(d: str, step: int, process: int = 0, processes: int = 1) -> None:
  """Hash the files of step directory ``d`` that ``process`` wrote and write its record."""
  digests = _file_digests(d, process if processes > 1 else None)
  rec = {"step": step, "files": digests}
  if process == 0:
    rec["processes"] = processes
  atomic.write_json(os.path.join(d, _record_name(process)), rec)


def verify_step_dir(d: str, owner: int | None = None) -> str | None:
  """None if the checkpoint step directory ``d`` matches its integrity records, else what is
  wrong (naming a file). ``owner``: check only that process's record and the files it lists
  (a step written by P processes may be read by any number)."""
  if not fs.isdir(d):
    return f"is missing ({d})"
  main = os.path.join(d, INTEGRITY_FILE)
  if not fs.exists(main):
    return "has no integrity record (interrupted while saving)"
  try:
    processes = int(atomic.read_json(main).get("processes", 1))
  except (SemJaxError, AttributeError, TypeError, ValueError):
    return f"has an unreadable integrity record {main}"
  # A step written by fewer processes than now read it: the extra ones have nothing to check.
  for p in range(processes) if owner is None else [owner] if owner < processes else []:
    rec_path = os.path.join(d, _record_name(p))
    if not fs.exists(rec_path):
      return f"has no integrity record of process {p} (interrupted while saving)"
    try:
      want = atomic.read_json(rec_path)["files"]
    except (SemJaxError, KeyError, TypeError):
      return f"has an unreadable integrity record {rec_path}"
    for rel, (size, digest) in sorted(want.items()):   # the files this record lists
      path = os.path.join(d, rel)
      if not fs.isfile(path):
        return f"is missing file {path}"
      if fs.getsize(path) != size:
        return f"has a truncated or resized file {path}"
      if atomic.sha256_file(path) != digest:
        return f"has an altered file {path} (SHA-256 mismatch)"
  return None


class Checkpoints:
  """Saves and restores {state, meta} under ``directory`` with orbax (all processes call)."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = fs.abspath(directory)
    self._hashing: threading.Thread | None = None
    self._hash_error: BaseException | None = None
    self._mngr = ocp.CheckpointManager(
        _orbax_path(self.directory), item_names=("state", "meta"),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def all_steps(self) -> list[int]:
    return sorted(self._mngr.all_steps())

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Save and wait for orbax's commit; then this process hashes its files in the background
    (the previous step's hashing is finished first)."""
    self.wait_for_integrity()
    try:
      with _orbax_errors_held():
        before = set(threading.enumerate())
        try:
          self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
          self._mngr.wait_until_finished()
        except Exception:
          _join_new_threads(before)   # their reports of the failure stay held
          raise
    except Exception as e:   # orbax / tensorstore report a failed write in their own types
      raise save_failed(self.step_dir(step), e) from None
    args = (self.step_dir(step), step, jax.process_index(), jax.process_count())
    self._hashing = threading.Thread(target=self._hash, args=args, daemon=True,
                                     name=f"sem_jax-integrity-{step}")
    self._hashing.start()

  def _hash(self, *args) -> None:
    try:
      write_integrity(*args)
    except BaseException as e:   # reported by wait_for_integrity; the step stays unverified
      self._hash_error = e

  def wait_for_integrity(self) -> None:
    """Block until the last step's integrity record is written (raises if hashing failed)."""
    if self._hashing is not None:
      self._hashing.join()
      self._hashing = None
    if self._hash_error is not None:
      e, self._hash_error = self._hash_error, None
      raise SemJaxError(f"could not write a checkpoint's integrity record: {e}")

  def verify(self, step: int) -> str | None:
    """None if the step's files match its integrity records, else what is wrong (naming a
    file). With several processes each checks the files it wrote and all learn the verdict."""
    self.wait_for_integrity()
    if jax.process_count() == 1:
      return verify_step_dir(self.step_dir(step))
    why = verify_step_dir(self.step_dir(step), jax.process_index())
    if sharding.any_process(why is not None) and why is None:
      why = "is damaged on another process's files"
    return why

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
      fs.makedirs(dest)
      for step in steps:
        fs.move(self.step_dir(step), os.path.join(dest, f"{step}-{time.strftime('%Y%m%dT%H%M%S')}"))
    if steps:
      sharding.sync("sem_jax_quarantine")
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
      differs = self._structure_difference(step, target)
      if differs:
        raise SemJaxError(
            f"checkpoint {where} holds a state of another structure than this run's ({differs}): "
            "another sem_jax version or model wrote it; resume with the version that wrote it, "
            "or use a new workdir; nothing was moved") from None
      raise _Unreadable(f"({_first_line(e)})") from None
    if jax.tree.structure(target) != jax.tree.structure(restored) or (
        jax.tree.map(_leaf_sig, target) != jax.tree.map(_leaf_sig, restored)):
      raise SemJaxError(f"checkpoint {where} does not match the requested model or dataset shapes")
    return restored, meta

  def _structure_difference(self, step: int, target: Any) -> str | None:
    """The values this run's state and the saved one do not share, named by path (first of
    each side), from the checkpoint's metadata; None when they share every path or the
    metadata cannot be read."""
    try:
      saved = _paths(self._mngr.item_metadata(step)["state"].tree)
    except Exception:   # no readable metadata: the caller reports the restore's own error
      return None
    wanted = _paths(target)
    missing, extra = sorted(wanted - saved), sorted(saved - wanted)
    if not (missing or extra):
      return None
    parts = []
    if missing:
      parts.append(f"it lacks {len(missing)} value(s) this run has, first {missing[0]}")
    if extra:
      parts.append(f"it holds {len(extra)} this run does not, first {extra[0]}")
    return "; ".join(parts)

  def close(self) -> None:
    self.wait_for_integrity()
    self._mngr.wait_until_finished()
    self._mngr.close()


def _join_new_threads(before: set, timeout_s: float = 30.0) -> None:
  """Wait (at most ``timeout_s`` in all) for the threads started since ``before`` was taken:
  orbax's background writers of a save that failed, which log the failure as they end."""
  end = time.time() + timeout_s
  for t in set(threading.enumerate()) - before:
    if t is not threading.current_thread():
      t.join(max(0.0, end - time.time()))


@contextlib.contextmanager
def _orbax_errors_held():
  """Hold the warnings and errors orbax's background threads log (through absl) and print (to
  ``sys.stderr``) while a save runs: a failed save is reported once, as [`save_failed`][save_failed]'s
  line, instead of a traceback per thread; after a successful save they are shown as usual."""
  logger, held, stderr = logging.getLogger("absl"), [], sys.stderr

  def hold(record):
    if record.levelno >= logging.WARNING:
      held.append(record)
      return False
    return True
  logger.addFilter(hold)
  sys.stderr = io.StringIO()   # tensorstore's callbacks print tracebacks of a failed write here
  try:
    yield
  finally:
    logger.removeFilter(hold)
    printed, sys.stderr = sys.stderr.getvalue(), stderr
  stderr.write(printed)   # reached only when the save succeeded
  for record in held:
    logger.handle(record)


def save_failed(step_dir: str, e: BaseException) -> SemJaxError:
  """The one-line error for a checkpoint save that raised ``e``: for a full disk (orbax and
  tensorstore report ENOSPC as text) the free space, and that the last intact step stands."""
  text = str(e)
  if isinstance(e, OSError) and e.errno is not None:
    err = e
  elif "No space left" in text or "ENOSPC" in text or "RESOURCE_EXHAUSTED" in text:
    err = OSError(errno.ENOSPC, "No space left on device")
  else:
    err = OSError(errno.EIO, _first_line(e))
  out = atomic.write_failed(step_dir, err)
  return SemJaxError(f"{out} (checkpoint not saved; the last intact checkpoint stays, and "
                     "the next run resumes from it)")


class _Unreadable(Exception):
  pass


def _paths(tree: Any) -> set[str]:
  """Each leaf's path as dotted names (dict keys, attribute names and sequence indices alike,
  so a saved tree of dicts and lists compares with the live dataclasses it came from)."""
  def name(k) -> str:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        return str(getattr(k, attr))
    return str(k)
  return {".".join(name(k) for k in path)
          for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _first_line(e: BaseException) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else type(e).__name__
