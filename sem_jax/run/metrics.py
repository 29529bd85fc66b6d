"""``metrics.jsonl``: one JSON object per line, each with an ``event`` (``train``: a progress
record; ``eval``: a victim's clean test accuracy; ``checkpoint``: a save and its time;
``final``: the run's last record). Read it with ``pandas.read_json(path, lines=True)`` and
select rows by ``event``.
"""
from __future__ import annotations

import json
import os

from sem_jax.files import atomic, fs

METRICS_FILE = "metrics.jsonl"


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
      atomic.atomic_write(path, lambda f: f.write("".join(lines).encode()))
    self._lines = lines if fs.is_url(path) else None

  def write(self, record: dict) -> None:
    line = json.dumps(record, sort_keys=True) + "\n"
    if self._lines is not None:
      self._lines.append(line)
      atomic.atomic_write(self.path, lambda f: f.write("".join(self._lines).encode()))
      return
    size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
    try:
      with open(self.path, "a") as f:
        f.write(line)
    except OSError as e:   # a full disk: cut the partial line, so every line stays a record
      try:
        os.truncate(self.path, size)
      except OSError:
        pass
      raise atomic.write_failed(self.path, e) from None
