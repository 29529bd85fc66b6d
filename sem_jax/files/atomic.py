"""Files written whole or not at all, read without pickle, and their digests.

Every write goes to a temporary name in the same folder, is fsynced, then renamed, so a
crash or a full disk never leaves a half-written file under the final name. A failed write
is one [`SemJaxError`][SemJaxError] naming the path ([`write_failed`][write_failed]; for a full disk with the
free space). Arrays are .npy, loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Callable

import numpy as np

from sem_jax.errors import SemJaxError
from sem_jax.files import fs


def free_bytes(path: str) -> int | None:
  """Free bytes on the filesystem holding ``path`` (its nearest existing parent); None for a URL
  or where the OS cannot say."""
  if fs.is_url(path):
    return None
  p = os.path.abspath(path)
  while p and not os.path.exists(p):
    p = os.path.dirname(p)
  try:
    return shutil.disk_usage(p).free
  except OSError:
    return None


def _mib(n: int) -> str:
  return f"{n / 2**20:.1f} MiB"


def write_failed(path: str, e: OSError, needed: int | None = None) -> SemJaxError:
  """The one-line error for a write of ``path`` that raised ``e``: the path and the OS's reason;
  for a full disk (ENOSPC, EDQUOT) also the free space and, where known, what was needed."""
  why = e.strerror or str(e) or type(e).__name__
  if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
    free = free_bytes(path)
    room = ([f"{_mib(free)} free"] if free is not None else []) + (
        [f"{_mib(needed)} needed"] if needed else [])
    why = "no space left on the device" + (f" ({', '.join(room)})" if room else "")
    return SemJaxError(f"cannot write {path}: {why}; free some space (or use another "
                       "folder) and re-run the same command: nothing written before is lost")
  return SemJaxError(f"cannot write {path}: {why}")


def check_local(path: str, what: str = "workdir") -> None:
  """Refuse a URL (gs://, s3://, ...) where a local path is needed (memory-mapped caches,
  orchestration folders), instead of letting it become a folder called 'gs:'."""
  if fs.is_url(path):
    raise SemJaxError(f"{what} {path}: must be a local path here (URLs are accepted for "
                      "workdirs of generate / evaluate / export / verify / visualize)")


def make_dir(path: str, what: str = "workdir") -> None:
  """Create directory ``path`` (and parents), or accept an existing one; a one-line error when
  or a parent is a file or cannot be created (a URL: the bucket is unreachable)."""
  try:
    if fs.exists(path) and not fs.isdir(path):
      raise SemJaxError(f"{what} {path} is a file, not a directory")
    fs.makedirs(path)
  except OSError as e:
    raise write_failed(path, e) if e.errno == errno.ENOSPC else SemJaxError(
        f"cannot create {what} {path}: {e.strerror or e}") from None


def atomic_write(path: str, write: Callable[[Any], Any], needed: int | None = None) -> None:
  """Write ``path`` whole or not at all: ``write(f)`` fills a temporary file beside it, which is
  fsynced and renamed onto ``path``. Any OSError is one SemJaxError naming the path
  ([`write_failed`][write_failed]; ``needed``: the bytes it takes, for the full-disk message); the
  temporary file is removed and ``path`` keeps what it held before."""
  if fs.isdir(path):
    raise SemJaxError(f"{path} is a directory; expected a file path")
  try:
    _write_whole(path, write)
  except OSError as e:
    raise write_failed(path, e, needed) from None


def _write_whole(path: str, write) -> None:
  if fs.is_url(path):   # an object appears only once its upload completes: no temporary name
    with fs.open(path, "wb") as f:
      write(f)
    return
  d = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
  try:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; artifacts are meant to be shared
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def write_json(path: str, obj: Any) -> None:
  """``obj`` as indented, key-sorted JSON, atomically."""
  atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def write_text(path: str, text: str) -> None:
  """A text file (UTF-8), atomically."""
  atomic_write(path, lambda f: f.write(text.encode()))


def read_json(path: str) -> Any:
  """A JSON file's value; unreadable or malformed: one SemJaxError naming the file."""
  try:
    with fs.open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise SemJaxError(f"cannot read {path}: {e}") from None


def save_npy(path: str, arr: np.ndarray) -> None:
  """Write one array as .npy atomically (plain dtypes only: never pickled)."""
  atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False), needed=int(arr.nbytes))


def sha256_file(path: str) -> str:
  """SHA-256 hex digest of a file, streamed in 1 MiB blocks."""
  h = hashlib.sha256()
  with fs.open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def sha256_arrays(*arrays: np.ndarray, block: int = 64 << 20) -> str:
  """Fingerprint of arrays (shape, dtype and bytes), read ``block`` bytes at a time (a memory
  map of tens of GB is streamed, never held)."""
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    flat = memoryview(a).cast("B")
    for start in range(0, len(flat), block):
      h.update(flat[start:start + block])
  return h.hexdigest()


