"""The prepared cache: a decoded dataset written once as memory-mapped .npy files.

Datasets that must be decoded and resized (the ImageNet subset's ~129k JPEGs, a user's
image folder) are *sources*: labels and a ``decode(split, rows)`` function. The first
run decodes every row once into ``<cache>/<name>-<key>/`` (``train_images.npy`` etc.,
written through ``np.lib.format.open_memmap``), with progress (images/s, ETA); the
progress is recorded after every block, so an interrupted preparation resumes where it
stopped. Later runs open the arrays with ``mmap_mode="r"`` in well under a second: no
image is read until a batch needs it, and each process reads only its own rows
(``sharding.gather_batch``); the page cache, not the process, holds what was read.

Why plain memory mapping (not ArrayRecord or Grain): random access to any row at memory
speed, no extra dependency, the arrays are ordinary .npy files a user can open, and the
runs' batch order is already a pure function of (seed, step) (``sem_jax.pipeline``), which
is what Grain would add.

Identity: the directory name hashes the dataset, its source location and the
preprocessing (``key``); ``meta.json`` also records the source's fingerprint (file sizes
and times, or the TFDS version and split sizes). A preparation is written under a temporary
name (``<dir>.partial-<fingerprint>``) and renamed into place only when complete, so no
reader ever opens a half-written cache. When the source has changed since (a photo added,
removed or edited), the next run prepares the new contents under their own temporary name
and then replaces the old copy: a cache is rebuilt, never refused and never silently
reused. The training set's SHA-256 (what ``dataset.fingerprint`` computes) is stored when
preparation completes, so opening does not re-hash 25 GB.
"""
from __future__ import annotations

import dataclasses
import errno
import glob
import hashlib
import json
import os
import shutil
import time
from typing import Callable

import numpy as np

from sem_jax.data.dataset import Dataset, make_dataset
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic

FORMAT = "sem_jax_prepared/1"
META = "meta.json"
ENV = "SEM_JAX_DATA_CACHE"
SPLITS = ("train", "test")
PARTIAL = ".partial-"     # <dir>.partial-<fingerprint>: a preparation under way


@dataclasses.dataclass
class Source:
  """A dataset to decode: everything but the pixels is known up front.

  ``decode(split, rows)`` returns uint8 (len(rows), *image_shape) for the given row
  numbers of ``split``; ``extras`` are Dataset fields (class_names, train_files, order,
  holdout) stored in the cache as JSON.
  """
  name: str
  key: dict                      # what the cached pixels depend on (name, source path, preprocessing)
  identity: dict                 # fingerprint of the source's current contents
  load_labels: Callable[[], dict]  # split -> int labels (read only when preparing)
  image_shape: tuple
  num_classes: int
  decode: Callable[[str, np.ndarray], np.ndarray]
  extras: dict = dataclasses.field(default_factory=dict)


def cache_root(setting: str) -> str | None:
  """Where prepared datasets live: None for ``off``; ``auto``: $SEM_JAX_DATA_CACHE, else
  ~/.cache/sem_jax/datasets; anything else is the directory."""
  s = (setting or "auto").strip()
  if s.lower() in ("off", "none", "no"):
    return None
  if s.lower() == "auto":
    s = os.environ.get(ENV) or os.path.join(os.path.expanduser("~"), ".cache", "sem_jax",
                                                 "datasets")
    if s.lower() in ("off", "none", "no"):
      return None
  atomic.check_local(s, "data_cache")
  return os.path.abspath(s)


def digest(obj) -> str:
  """SHA-256 of an object's key-sorted JSON."""
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def cache_dir(root: str, src: Source) -> str:
  return os.path.join(root, f"{src.name}-{digest(src.key)[:16]}")


def load(src: Source, setting: str = "auto", log: Callable[[str], None] = print,
         block: int = 256, group: tuple[bool, Callable[[str], None]] | None = None) -> Dataset:
  """The dataset of ``src``: from its prepared cache (preparing or finishing it first), or
  decoded into memory when the cache is ``off``.

  ``group``: (this process leads, a barrier ``sync(name)``) in a run of several processes:
  the lead prepares first, then any host whose cache folder is its own prepares too."""
  root = cache_root(setting)
  if root is None:
    labels = src.load_labels()
    arrays = {s: np.empty((len(labels[s]), *src.image_shape), np.uint8) for s in SPLITS}
    for split in SPLITS:
      _fill(src, split, arrays[split], 0, block, log, lambda done: None)
    return _dataset(src, arrays, labels, None)
  d = cache_dir(root, src)
  if group is None:
    ensure(src, d, log, block)
  else:
    lead, sync = group
    if lead:
      ensure(src, d, log, block)
    sync("sem_jax_prepare")
    if _meta(src, d) is None:
      ensure(src, d, log, block)   # a host-local cache directory
    sync("sem_jax_prepared")
  return open_prepared(src, d)


def _paths(d: str, split: str) -> tuple[str, str]:
  return os.path.join(d, f"{split}_images.npy"), os.path.join(d, f"{split}_labels.npy")


def _read_meta(d: str) -> dict | None:
  try:
    meta = atomic.read_json(os.path.join(d, META))
  except SemJaxError:
    return None
  return meta if isinstance(meta, dict) else None


def _meta(src: Source, d: str, complete: bool = True) -> dict | None:
  """The meta.json of ``d`` if ``d`` holds a preparation of this source's current contents
  (a complete one, unless ``complete`` is False); else None."""
  meta = _read_meta(d)
  if (meta is None or meta.get("format") != FORMAT
      or meta.get("key") != json.loads(json.dumps(src.key))
      or meta.get("identity_sha256") != digest(src.identity)):
    return None
  return meta if meta.get("complete") or not complete else None


def ensure(src: Source, d: str, log: Callable[[str], None] = print, block: int = 256) -> None:
  """Make ``d`` the complete preparation of ``src``'s current contents: nothing to do when it
  is; else decode into ``d.partial-<fingerprint>`` (resuming one left by an interrupted run)
  and rename it onto ``d``, replacing a copy made from older contents."""
  if _meta(src, d) is not None:
    return
  partial = d + PARTIAL + digest(src.identity)[:16]
  for stale in glob.glob(glob.escape(d) + PARTIAL + "*"):   # older contents' preparations
    if stale != partial:
      shutil.rmtree(stale, ignore_errors=True)
  old = _read_meta(d) if os.path.isdir(d) else None
  if old is not None and not old.get("complete") and _meta(src, d, complete=False):
    os.replace(d, partial)   # an in-place preparation of these contents: finish it
  elif os.path.exists(d):
    log(f"the source of {d} changed since it was prepared: preparing it again (the old copy "
        "is replaced once the new one is complete)")
  prepare(src, partial, log, block)
  if os.path.exists(d):
    trash = d + ".replaced"
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(d, trash)
    os.replace(partial, d)
    shutil.rmtree(trash, ignore_errors=True)
  else:
    os.replace(partial, d)


def _reserve(path: str) -> None:
  """Allocate the disk blocks of a freshly created (sparse) memory-mapped file, so that a full
  disk is an ENOSPC here rather than a SIGBUS when the decoded pages are written later."""
  if not hasattr(os, "posix_fallocate"):
    return
  fd = os.open(path, os.O_RDWR)
  try:
    os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
  except OSError as e:
    if e.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):   # no fallocate here
      return
    raise
  finally:
    os.close(fd)


def prepare(src: Source, d: str, log: Callable[[str], None] = print, block: int = 256) -> None:
  """Decode every row of ``src`` into the directory ``d`` (resuming a partial one of the same
  contents); ``meta.json`` says ``complete`` at the end."""
  meta = _meta(src, d, complete=False)
  if meta is not None and meta.get("complete"):
    return
  if meta is None:
    if os.path.exists(d):
      shutil.rmtree(d)
    labels = src.load_labels()
    atomic.make_dir(d, "data_cache")
    for split in SPLITS:
      ipath, lpath = _paths(d, split)
      shape = (len(labels[split]), *src.image_shape)
      try:
        np.lib.format.open_memmap(ipath, "w+", np.uint8, shape)
        _reserve(ipath)
      except OSError as e:
        raise atomic.write_failed(ipath, e, int(np.prod(shape))) from None
      atomic.save_npy(lpath, np.asarray(labels[split], np.int32))
    meta = {"format": FORMAT, "key": src.key, "identity_sha256": digest(src.identity),
            "identity": src.identity, "image_shape": list(src.image_shape),
            "num_classes": src.num_classes, "extras": src.extras,
            "rows": {s: len(labels[s]) for s in SPLITS},
            "done": {s: 0 for s in SPLITS}, "complete": False}
    atomic.write_json(os.path.join(d, META), meta)
    log(f"preparing {src.name} once into {d} ({meta['rows']['train']} training and "
        f"{meta['rows']['test']} test images {tuple(src.image_shape)}); later runs open it "
        "in seconds")
  else:
    log(f"resuming the preparation of {src.name} in {d} at "
        + ", ".join(f"{s} {meta['done'][s]}/{meta['rows'][s]}" for s in SPLITS))
  for split in SPLITS:
    ipath, _ = _paths(d, split)
    try:
      arr = np.load(ipath, mmap_mode="r+", allow_pickle=False)
    except (OSError, ValueError) as e:
      raise SemJaxError(f"prepared cache file {ipath} is unreadable ({e}); delete {d}") from None
    if arr.shape != (meta["rows"][split], *src.image_shape) or arr.dtype != np.uint8:
      raise SemJaxError(f"prepared cache file {ipath} has shape {arr.shape} {arr.dtype}; "
                        f"delete {d} to prepare again")

    def record(done, split=split):
      meta["done"][split] = done
      atomic.write_json(os.path.join(d, META), meta)

    _fill(src, split, arr, meta["done"][split], block, log, record)
    del arr
  images, labels = (np.load(p, mmap_mode="r", allow_pickle=False) for p in _paths(d, "train"))
  meta["train_sha256"] = atomic.sha256_arrays(images, labels)   # streams the memory map
  meta["complete"] = True
  atomic.write_json(os.path.join(d, META), meta)


def _fill(src: Source, split: str, out, start: int, block: int, log, record) -> None:
  """Decode rows [start, len) of ``split`` into ``out`` block by block, recording progress
  after each block (flushed first) and logging images/s and ETA about every 10 s."""
  n = len(out)
  t0 = last = time.time()
  for s in range(start, n, block):
    e = min(s + block, n)
    rows = src.decode(split, np.arange(s, e))
    if rows.shape != (e - s, *src.image_shape) or rows.dtype != np.uint8:
      raise SemJaxError(f"{src.name} {split}: decoded rows {s}..{e} have shape {rows.shape} "
                        f"{rows.dtype}, expected uint8 {(e - s, *src.image_shape)}")
    out[s:e] = rows
    if isinstance(out, np.memmap):
      out.flush()
    record(e)
    now = time.time()
    if now - last >= 10 or (e == n and n - start > block):
      rate = (e - start) / max(now - t0, 1e-9)
      log(f"prepare {src.name} {split}: {e}/{n} images, {rate:.0f} img/s, "
          f"ETA {(n - e) / max(rate, 1e-9):.0f} s")
      last = now


def open_prepared(src: Source, d: str) -> Dataset:
  """The complete cache in ``d`` as a Dataset whose images are read-only memory maps, after
  the training images and labels are hashed again and found equal to the SHA-256 recorded
  when they were prepared (streamed: about 0.5 s a GB here, docs/performance.md)."""
  meta = _meta(src, d)
  if meta is None:
    raise SemJaxError(f"prepared cache {d} does not hold this source's current contents; run "
                      "the same command to prepare it")
  arrays, labels = {}, {}
  for split in SPLITS:
    ipath, lpath = _paths(d, split)
    try:
      arrays[split] = np.load(ipath, mmap_mode="r", allow_pickle=False)
      labels[split] = np.load(lpath, allow_pickle=False)
    except (OSError, ValueError) as e:
      raise SemJaxError(f"prepared cache {d}: cannot read {split} arrays ({e}); delete it") from None
    if not len(arrays[split]) == len(labels[split]) == meta["rows"][split]:
      raise SemJaxError(f"prepared cache {d}: {split} arrays do not match its {META}; delete it")
  if atomic.sha256_arrays(arrays["train"], labels["train"]) != meta["train_sha256"]:
    try:
      os.remove(os.path.join(d, META))   # the next run prepares it again from the source
    except FileNotFoundError:            # another process of this run removed it first
      pass
    raise SemJaxError(f"prepared cache {d}: its training images or labels no longer match the "
                      "SHA-256 recorded when they were prepared (a disk error, an edit or another "
                      "writer); nothing was trained or published from them: run the same command "
                      "again to prepare them anew from the source")
  return _dataset(src, arrays, labels, meta["train_sha256"])


def _dataset(src: Source, arrays: dict, labels: dict, digest: str | None) -> Dataset:
  ds = make_dataset(src.name, arrays["train"], labels["train"], arrays["test"], labels["test"],
                    src.num_classes)
  ex = dict(src.extras)
  if ex.get("holdout") is not None:
    ex["holdout"] = np.asarray(ex["holdout"], np.int32)
  for k in ("class_names", "train_files"):
    if k in ex:
      ex[k] = tuple(ex[k])
  return dataclasses.replace(ds, digest=digest, **ex)
