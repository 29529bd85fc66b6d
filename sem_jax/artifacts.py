"""Files a run publishes: noise.npy (int8 pixel levels), manifest.json, metrics.jsonl.

Everything is written atomically (temporary file, fsync, rename), so a crash
never leaves a half-written artifact under the final name. No pickle: arrays
are .npy, loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import textwrap
from typing import Any

import numpy as np

from sem_jax import fs
from sem_jax.errors import SemJaxError

NOISE_FILE = "noise.npy"
NOISE_SHARD_DIR = "noise"       # noise_format "shards": noise/noise-START-STOP.npy
MANIFEST_FILE = "manifest.json"
RUN_CONFIG_FILE = "run_config.json"
METRICS_FILE = "metrics.jsonl"


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
    raise SemJaxError(f"cannot create {what} {path}: {e.strerror or e}") from None


def _atomic_write(path: str, write) -> None:
  if fs.isdir(path):
    raise SemJaxError(f"{path} is a directory; expected a file path")
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
  _atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def write_text(path: str, text: str) -> None:
  _atomic_write(path, lambda f: f.write(text.encode()))


def line_plot(path: str, series, *, xlabel: str, ylabel: str, ylim, title: str) -> None:
  """Write a PNG line plot (matplotlib, Agg) atomically.

  series: iterable of (label or None, xs, ys, linestyle).
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  labelled = False
  for label, xs, ys, style in series:
    ax.plot(xs, ys, marker="o", label=label, linestyle=style)
    labelled = labelled or label is not None
  ax.set(xlabel=xlabel, ylabel=ylabel, ylim=ylim, title=title)
  ax.grid(alpha=0.3)
  if labelled:
    ax.legend()
  fig.tight_layout()
  _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
  plt.close(fig)


def bar_plot(path: str, bars, *, xlabel: str, xlim, title: str) -> None:
  """Write a PNG horizontal bar chart (matplotlib, Agg) atomically, first bar on top, its
  value printed beside it; the figure grows with the number of bars.

  bars: iterable of (label, value, dashed: bool).
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  bars = list(bars)
  fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * len(bars)))
  ys = range(len(bars))[::-1]
  for y, (label, value, dashed) in zip(ys, bars):
    ax.barh(y, value, color="white" if dashed else "C0", edgecolor="C0",
            linestyle="--" if dashed else "-")
    ax.text(value + 0.01 * (xlim[1] - xlim[0]), y, f"{value:.1f}", va="center", fontsize=8)
  ax.set_yticks(list(ys), [b[0] for b in bars], fontsize=8)
  ax.set(xlabel=xlabel, xlim=xlim)
  ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=10)
  ax.grid(axis="x", alpha=0.3)
  fig.tight_layout()
  _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
  plt.close(fig)


def read_json(path: str) -> Any:
  try:
    with fs.open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise SemJaxError(f"cannot read {path}: {e}") from None


def save_npy(path: str, arr: np.ndarray) -> None:
  """Write one array as .npy atomically (plain dtypes only: never pickled)."""
  _atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))


def save_noise(path: str, noise: np.ndarray) -> str:
  """Write int8 noise as .npy atomically; return its SHA-256 hex digest."""
  if noise.dtype != np.int8:
    raise ValueError(f"noise must be int8, got {noise.dtype}")
  _atomic_write(path, lambda f: np.save(f, noise, allow_pickle=False))
  return sha256_file(path)


def load_noise(path: str, mmap: bool = False) -> np.ndarray:
  """Load a noise table without pickle (``mmap``: memory-mapped, read-only); errors name
  the file; a URL is always read into memory)."""
  try:
    if fs.is_url(path):
      with fs.open(path, "rb") as f:
        noise = np.load(f, allow_pickle=False)
    else:
      noise = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
  except (OSError, ValueError, EOFError) as e:
    raise SemJaxError(f"cannot read noise file {path}: {e}") from None
  if noise.dtype != np.int8 or noise.ndim != 4:
    raise SemJaxError(f"{path}: expected int8 (N, H, W, C), got {noise.dtype} {noise.shape}")
  return noise


def shard_name(start: int, stop: int) -> str:
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
  """The run's int8 noise table (N, H, W, C), from noise.npy or from its shards.

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
    if check_sha and sha256_file(path) != want:
      raise SemJaxError(f"{path} does not match the SHA-256 in its manifest (altered or corrupt); "
                        "run `run.py verify` on it")
    return load_noise(path, mmap)
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
    if check_sha and sha256_file(path) != want:
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
    from sem_jax.rows import Concat
    return Concat(parts, np.int8)
  return out


def sha256_file(path: str) -> str:
  h = hashlib.sha256()
  with fs.open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def sha256_arrays(*arrays: np.ndarray) -> str:
  """Fingerprint of arrays (shape, dtype and bytes)."""
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a).cast("B"))
  return h.hexdigest()


def _kept(line: str, step: int) -> bool:
  """A metrics line a run resumed at ``step`` keeps: parseable, not after it, not the end."""
  try:
    rec = json.loads(line)
  except json.JSONDecodeError:
    return False
  return rec.get("step", 0) <= step and rec.get("event") != "final"


class MetricsWriter:
  """Appends one JSON object per line to metrics.jsonl (plot with pandas.read_json(lines=True)).

  A URL cannot be appended to: its lines are kept here and the object rewritten per record.
  """

  def __init__(self, path: str, truncate_after_step: int | None = None):
    self.path = path
    lines = []
    if fs.exists(path):
      with fs.open(path) as f:
        lines = [line if line.endswith("\n") else line + "\n" for line in f]
    if truncate_after_step is not None and lines:
      # A resumed run rewrites the steps after its checkpoint: drop them first.
      lines = [line for line in lines if _kept(line, truncate_after_step)]
      _atomic_write(path, lambda f: f.write("".join(lines).encode()))
    self._lines = lines if fs.is_url(path) else None

  def write(self, record: dict) -> None:
    line = json.dumps(record, sort_keys=True) + "\n"
    if self._lines is not None:
      self._lines.append(line)
      _atomic_write(self.path, lambda f: f.write("".join(self._lines).encode()))
      return
    with open(self.path, "a") as f:
      f.write(line)
