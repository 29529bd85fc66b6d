"""The one path layer for the files sem_jax reads and writes.

Local paths go straight to ``os`` (unchanged behaviour: atomic writes by rename,
memory maps). URLs (``gs://``, ``s3://``, ``az://``: anything with ``://``) go
to ``etils.epath``, the layer orbax itself uses, so a workdir, a noise run or an
export destination may live in a bucket. Object stores have no rename and no
append: a URL is written in one piece (an object appears only once its upload
completes), appended files are rewritten whole, and a "memory-mapped" read
downloads the file into host memory.

Only names are strings here; every function takes and returns ``str`` paths.
"""
from __future__ import annotations

import os
import shutil
from typing import IO, Iterator

from sem_jax.errors import SemJaxError


def is_url(path) -> bool:
  return "://" in str(path)


def _ep(path):
  from etils import epath
  try:
    return epath.Path(str(path))
  except (KeyError, NotImplementedError):   # a scheme epath does not know
    raise SemJaxError(f"{path}: unsupported scheme {str(path).split('://')[0]}:// (use a local "
                      "path, gs://, s3:// or az://)") from None


def abspath(path: str) -> str:
  """An absolute local path, or the URL unchanged (os.path.abspath would fold its '//')."""
  return str(path) if is_url(path) else os.path.abspath(path)


def exists(path: str) -> bool:
  return _ep(path).exists() if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
  return _ep(path).is_dir() if is_url(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
  return exists(path) and not isdir(path)


def listdir(path: str) -> list[str]:
  """Entry names (not paths) of a directory."""
  if is_url(path):
    return [p.name for p in _ep(path).iterdir()]
  return os.listdir(path)


def makedirs(path: str) -> None:
  """Create a directory and its parents; an existing one is accepted."""
  if is_url(path):
    _ep(path).mkdir(parents=True, exist_ok=True)
  else:
    os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
  if is_url(path):
    _ep(path).unlink()
  else:
    os.remove(path)


def rmtree(path: str) -> None:
  if is_url(path):
    _ep(path).rmtree()
  else:
    shutil.rmtree(path)


def move(src: str, dst: str) -> None:
  """Rename a file or directory (a URL directory: copied file by file, then the source removed,
  so nothing is lost if it fails half-way)."""
  if not is_url(src) and not is_url(dst):
    os.replace(src, dst)
    return
  if not isdir(src):
    _ep(src).copy(_ep(dst), overwrite=True)
    remove(src)
    return
  for root, _, files in walk(src):
    rel = relpath(root, src)
    target = join(dst, rel) if rel else dst
    makedirs(target)
    for f in files:
      _ep(join(root, f)).copy(_ep(join(target, f)), overwrite=True)
  rmtree(src)


def join(*parts: str) -> str:
  return os.path.join(*parts)


def getsize(path: str) -> int:
  return int(_ep(path).stat().length) if is_url(path) else os.path.getsize(path)


def stat_key(path: str) -> tuple[int, int]:
  """(size in bytes, modification time in ns; whole seconds for a URL)."""
  if is_url(path):
    st = _ep(path).stat()
    return int(st.length), int(st.mtime) * 10**9
  st = os.stat(path)
  return st.st_size, st.st_mtime_ns


def open(path: str, mode: str = "r") -> IO:   # noqa: A001 (the builtin, for a path or URL)
  if is_url(path):
    return _ep(path).open(mode)
  import builtins
  return builtins.open(path, mode)


def walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
  """os.walk (top-down) for a local path or a URL; roots are joined from ``top``."""
  if not is_url(top):
    yield from os.walk(top)
    return
  names = listdir(top)
  dirs = [n for n in names if isdir(join(top, n))]
  files = [n for n in names if n not in dirs]
  yield top, dirs, files
  for d in dirs:
    yield from walk(join(top, d))


def relpath(path: str, root: str) -> str:
  """``path`` relative to ``root`` ('/'-separated), for paths joined from ``root`` (local or URL;
  os.path.relpath would normalise a URL's '//')."""
  return path[len(root):].lstrip("/")
