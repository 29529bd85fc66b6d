"""One writer per workdir: an advisory lock of the OS held while a command writes a folder.

The lock is ``flock`` on a small file beside the folder, ``<parent>/.<name>.sem_jax.lock``
(beside, not inside, so that a folder's contents stay what the run wrote and a refused folder
is left as it was). The file records the holder (host, pid, since when); the kernel releases
the lock when its process ends, however it ends, so a lock left by a killed process is free
and is taken over, and the takeover is logged with the record it found. URLs (``gs://``) are
not locked: object stores have no advisory locks.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from typing import Callable

from sem_jax.errors import SemJaxError
from sem_jax.files import fs

SUFFIX = ".sem_jax.lock"


def lock_path(directory: str) -> str:
  """The lock file of ``directory``: a hidden sibling of it."""
  d = os.path.abspath(directory).rstrip(os.sep)
  return os.path.join(os.path.dirname(d), f".{os.path.basename(d)}{SUFFIX}")


def _holder() -> dict:
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "since": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())}


def _describe(record: dict) -> str:
  return (f"host {record.get('host', '?')}, pid {record.get('pid', '?')}, since "
          f"{record.get('since', '?')}")


class WorkdirLock:
  """Hold the lock of ``directory`` (``with WorkdirLock(d, what, log):``) or raise one line."""

  def __init__(self, directory: str, what: str = "workdir",
               log: Callable[[str], None] = print):
    self.directory, self.what, self.log = directory, what, log
    self._file = None

  def acquire(self) -> "WorkdirLock":
    if self._file is not None or fs.is_url(self.directory):
      return self
    path = lock_path(self.directory)
    try:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      f = open(path, "a+")
    except OSError as e:   # the folder's parent is a file, or cannot be written
      raise SemJaxError(f"cannot create {self.what} {self.directory}: {e.strerror or e} "
                        f"(its lock {path})") from None
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      record = _read(f)
      f.close()
      raise SemJaxError(f"{self.what} {self.directory} is in use by another sem_jax command "
                        f"({_describe(record)}); wait for it to finish or stop it") from None
    record = _read(f)
    if record.get("pid") is not None and not record.get("released"):
      self.log(f"took over the lock of {self.what} {self.directory} from a command that "
               f"ended without releasing it ({_describe(record)})")
    f.seek(0)
    f.truncate()
    json.dump(_holder(), f)
    f.flush()
    self._file = f
    return self

  def release(self) -> None:
    if self._file is None:
      return
    try:
      record = {**_read(self._file), "released": True}
      self._file.seek(0)
      self._file.truncate()
      json.dump(record, self._file)
      self._file.flush()
    except OSError:   # a full disk must not hide the error that is ending the command
      pass
    finally:
      self._file.close()   # closing releases the flock
      self._file = None

  def __enter__(self) -> "WorkdirLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def _read(f) -> dict:
  try:
    f.seek(0)
    record = json.loads(f.read() or "{}")
  except (OSError, ValueError):
    return {}
  return record if isinstance(record, dict) else {}
