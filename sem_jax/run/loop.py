"""The run scaffold shared by ``generate`` and ``evaluate``: one skeleton, written once.

A [`Run`][Run] owns everything about a resumable run in a workdir except its math:

- claiming the workdir (process 0 decides, every process agrees): a fresh run records
  its identity in ``run_config.json`` ([`sem_jax.run.identity`][sem_jax.run.identity]); a workdir holding
  another run or foreign files is refused, never overwritten; a finished run is not
  recomputed;
- SIGTERM (preemption): a flag read at every step boundary, agreed across processes;
- restore-or-init from verified orbax checkpoints, and saving them;
- the step loop with one cadence predicate ([`itstime`][itstime]), progress lines with
  steps/s and ETA, and ``metrics.jsonl``;
- the final JSON: process 0 writes it, every other process reads it back.

The caller supplies the pure step (``carry, step -> carry, metrics``) and the hooks.
"""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from typing import Any, Callable, Sequence

import jax

from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs
from sem_jax.files.lock import WorkdirLock
from sem_jax.run import sharding
from sem_jax.run.checkpoint import CHECKPOINT_DIR, Checkpoints
from sem_jax.run.identity import (KINDS, RUN_CONFIG_FILE, folder_kind, identity_changes,
                                  identity_kind)
from sem_jax.run.metrics import METRICS_FILE, MetricsWriter

FRESH, RESUME, DONE = 0, 1, 2


def itstime(step: int, every: int, last: int) -> bool:
  """True after ``step`` when it is a multiple of ``every`` or the ``last`` step."""
  return (every > 0 and step % every == 0) or step == last


def fmt_time(s: float) -> str:
  """Seconds as 'MmSSs', or 'HhMMmSSs' from one hour on."""
  s = int(max(0, s))
  return f"{s // 3600}h{s // 60 % 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def abstract_like(tree):
  """ShapeDtypeStructs (with shardings) for the jax arrays of ``tree``; other leaves as they are."""
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)
                      if isinstance(a, jax.Array) else a, tree)


@dataclasses.dataclass(frozen=True)
class Schedule:
  """When a loop runs, logs, checkpoints and stops (from a run config's fields)."""
  total: int                 # train_steps
  stop_after: int = 0        # >0: checkpoint and stop after this step
  log_every: int = 10
  checkpoint_every: int = 100
  batch_size: int = 1        # images per step, for img/s

  @classmethod
  def of(cls, cfg) -> "Schedule":
    return cls(cfg.train_steps, cfg.stop_after_step, cfg.log_every, cfg.checkpoint_every,
               cfg.batch_size)

  @property
  def stop_at(self) -> int:
    return self.stop_after if 0 < self.stop_after < self.total else self.total


class Throughput:
  """Steps per second over the window since the last report (progress lines, metrics)."""

  def __init__(self):
    self._t, self._n = time.time(), 0

  def step(self) -> None:
    self._n += 1

  def report(self, steps_left: int) -> tuple[float, float, float]:
    """(steps/s in this window, ETA seconds for steps_left, now); starts a new window."""
    now = time.time()
    rate = self._n / max(now - self._t, 1e-9)
    self._t, self._n = now, 0
    return rate, steps_left / rate, now


class StopSignal:
  """Turns SIGTERM (preemption) into a flag the loop reads at each step boundary.

  Nested (a suite around its runs): a signal received by the inner one also sets the outer
  flag, and an inner one entered after a signal starts out stopped.
  """

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
      outer = getattr(self._previous, "__self__", None)
      self.requested = isinstance(outer, StopSignal) and outer.requested
    return self

  def _handle(self, signum, frame):
    self.requested = True
    outer = getattr(self._previous, "__self__", None)
    if isinstance(outer, StopSignal):
      outer._handle(signum, frame)

  def stopped(self, log: Callable[[str], None], what: str) -> bool:
    """True (saying so) when SIGTERM arrived: the suite stops before ``what``."""
    if self.requested:
      log(f"stopped before {what} (SIGTERM received); re-run the same command to continue")
    return self.requested

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _prepare_workdir(workdir: str, want: dict, done_file: str) -> int:
  """FRESH, RESUME or DONE for the run described by ``want`` (process 0 only)."""
  if fs.exists(workdir) and not fs.isdir(workdir):
    raise SemJaxError(f"workdir {workdir} is a file, not a directory")
  run_cfg_path = os.path.join(workdir, RUN_CONFIG_FILE)
  if fs.exists(run_cfg_path):
    have = atomic.read_json(run_cfg_path)
    if identity_kind(have) != identity_kind(want):
      raise SemJaxError(f"workdir {workdir} holds {KINDS[identity_kind(have)]}, not "
                        f"{KINDS[identity_kind(want)]}: use a new --workdir")
    changes = identity_changes(have, want)
    if changes:
      raise SemJaxError(f"workdir {workdir} holds a run with a different config or dataset "
                        f"({'; '.join(changes[:3])}{'; ...' if len(changes) > 3 else ''}); "
                        "refusing to overwrite it: use a new --workdir")
    return DONE if fs.exists(os.path.join(workdir, done_file)) else RESUME
  if fs.isdir(workdir) and fs.listdir(workdir):
    found = folder_kind(workdir)
    if found:
      raise SemJaxError(f"workdir {workdir} holds {KINDS[found]}, not "
                        f"{KINDS[identity_kind(want)]}: use a new --workdir")
    raise SemJaxError(f"workdir {workdir} is not empty and holds no sem_jax run; "
                      "refusing to write into it: use a new or empty --workdir")
  atomic.make_dir(workdir)
  atomic.write_json(run_cfg_path, want)
  return FRESH


def claim_workdir(workdir: str, want: dict, done_file: str, lock: WorkdirLock | None = None) -> int:
  """Process 0 takes the workdir's ``lock`` (one command per workdir) and claims the workdir
  for the run ``want`` ({config, data, ...}); all processes agree.

  The run is done when ``done_file`` (written last) exists. Raises SemJaxError on every
  process when process 0 refuses the workdir.
  """
  status, error = -1, ""
  if jax.process_index() == 0:
    try:
      if lock is not None:
        lock.acquire()
      status = _prepare_workdir(workdir, want, done_file)
    except SemJaxError as e:
      error = str(e)
  status = sharding.broadcast_from_first(status)
  if status < 0:
    raise SemJaxError(error or "process 0 refused the workdir (see its error)")
  return status


class Run:
  """One resumable run in ``workdir``; use as a context manager (it catches SIGTERM).

  Args:
    workdir: the run's directory.
    identity: {config, data, ...}: what must match to resume (``run_config.json``).
    fingerprint: the checkpoints' identity ([`run_fingerprint`][run_fingerprint]).
    done_file: the JSON written last; its presence means the run is finished.
    max_checkpoints: how many recent checkpoints orbax keeps.
    log: where process 0's progress lines go (the other processes stay quiet).
  """

  def __init__(self, workdir: str, identity: dict, fingerprint: str, done_file: str,
               max_checkpoints: int, log: Callable[[str], None] = print, accept: tuple = ()):
    self.workdir, self.identity, self.fingerprint = workdir, identity, fingerprint
    self.accept = accept   # other fingerprints of this same run (accepted_fingerprints)
    self.done_file, self.max_checkpoints = done_file, max_checkpoints
    self.lead = jax.process_index() == 0
    self.say = log if self.lead else (lambda *_: None)
    self._stop = StopSignal()
    self.status = -1
    self.t_start, self.prior_elapsed = time.time(), 0.0
    self._ckpts: Checkpoints | None = None
    self.metrics: MetricsWriter | None = None
    self.meta: dict = {}
    self._lock = WorkdirLock(workdir, "workdir", self.say) if self.lead else None

  def __enter__(self) -> "Run":
    self._stop.__enter__()
    try:
      self.status = claim_workdir(self.workdir, self.identity, self.done_file, self._lock)
    except BaseException:
      if self._lock is not None:
        self._lock.release()
      self._stop.__exit__()
      raise
    self.t_start = time.time()
    return self

  def __exit__(self, *exc) -> None:
    try:
      self.close_checkpoints()
    finally:
      if self._lock is not None:
        self._lock.release()
      self._stop.__exit__()

  @property
  def done(self) -> bool:
    return self.status == DONE

  def stop_requested(self) -> bool:
    """Whether SIGTERM reached any process of the run (a collective: all processes call)."""
    return sharding.any_process(self._stop.requested)

  def finished_result(self, check: Callable[[dict], None]) -> dict:
    """The done file of a finished run, after ``check(result)`` proved the artifacts it vouches
    for (it raises SemJaxError naming what is damaged)."""
    result = atomic.read_json(os.path.join(self.workdir, self.done_file))
    try:
      check(result)
    except SemJaxError as e:
      raise SemJaxError(f"{self.workdir} is marked finished but its artifacts are damaged: {e}; "
                        "run `run.py verify`, or redo the run in a new workdir") from None
    return result

  def elapsed(self) -> float:
    """Seconds of compute in this run, over every session that resumed it."""
    return self.prior_elapsed + time.time() - self.t_start

  # ------------------------------------------------------------------ checkpoints
  def restore(self, target: Any) -> tuple[Any, int] | None:
    """(tree, step) of the newest intact checkpoint shaped (and sharded) like ``target``;
    None on a fresh start. Opens the metrics file, dropping records after that step."""
    self._ckpts = Checkpoints(os.path.join(self.workdir, CHECKPOINT_DIR), self.max_checkpoints)
    found = self._ckpts.restore_latest(abstract_like(target), self.fingerprint, self.say,
                                       self.accept)
    start = 0
    if found is not None:
      tree, self.meta = found
      start, self.prior_elapsed = int(self.meta["step"]), float(self.meta.get("elapsed_s", 0.0))
      self.say(f"resuming {self.workdir} from checkpoint step {start}")
    self._open_metrics(start)
    return (tree, start) if found is not None else None

  def _open_metrics(self, start: int) -> None:
    if self.lead:
      self.metrics = MetricsWriter(os.path.join(self.workdir, METRICS_FILE),
                                             truncate_after_step=start)

  def start_without_checkpoints(self, start: int) -> None:
    """For runs with no loop to resume (a single pass from ``start``): only the metrics file."""
    self._open_metrics(start)

  def save(self, step: int, tree: Any, **meta) -> None:
    """Checkpoint ``tree`` at ``step`` with the run's fingerprint and elapsed time (collective);
    the time the loop waited for it goes to metrics.jsonl (event "checkpoint", save_s)."""
    t0 = time.time()
    self._ckpts.save(step, tree, {"fingerprint": self.fingerprint, "step": step,
                                  "elapsed_s": self.elapsed(), **meta})
    self.write_metrics({"event": "checkpoint", "step": step, "save_s": time.time() - t0})

  def write_metrics(self, record: dict) -> None:
    if self.metrics is not None:
      self.metrics.write(record)

  # ------------------------------------------------------------------ the loop
  def loop(self, carry: Any, start: int, schedule: Schedule,
           step_fn: Callable[[Any, int], tuple[Any, dict]],
           checkpoint: Callable[[Any], tuple[Any, dict]], *, what: str,
           record: Callable[[int, dict], dict], extra: Callable[[dict], str] = lambda m: "",
           hooks: Sequence[tuple[int, Callable[[Any, int], None]]] = ()) -> tuple[Any, int, bool]:
    """Run steps start -> schedule.stop_at; return (carry, step, finished all steps).

    step_fn(carry, step) -> (carry, device metrics with "loss" and "accuracy");
    checkpoint(carry) -> (tree to save, extra meta); hooks: (every, fn(carry, step)) run
    after each step where itstime(step, every, schedule.total), before the progress line.
    ``what`` names the trained model in the non-finite-loss error; ``record`` and ``extra``
    shape the metrics record and the progress line.
    """
    stop_at, window = schedule.stop_at, Throughput()
    step, preempted = start, False
    while step < stop_at:
      carry, m = step_fn(carry, step)
      step += 1
      window.step()
      for every, hook in hooks:
        if itstime(step, every, schedule.total):
          hook(carry, step)
      if itstime(step, schedule.log_every, stop_at):
        self._progress(step, schedule, window, {k: float(v) for k, v in m.items()}, what,
                       record, extra)
      preempted = self.stop_requested() and step < stop_at
      if itstime(step, schedule.checkpoint_every, stop_at) or preempted:
        tree, meta = checkpoint(carry)
        self.save(step, tree, **meta)
      if preempted:
        break
    if step < schedule.total:
      self.close_checkpoints()
      why = "SIGTERM received" if preempted else "stop_after_step"
      self.say(f"stopped after step {step} ({why}); checkpoint saved. "
               "Re-run the same command to resume.")
      return carry, step, False
    return carry, step, True

  def _progress(self, step, schedule, window, m, what, record, extra) -> None:
    if not math.isfinite(m["loss"]):
      raise SemJaxError(f"{what} loss became {m['loss']} at step {step}; lower learning_rate")
    rate, eta, now = window.report(schedule.total - step)
    self.say(f"step {step}/{schedule.total}  loss {m['loss']:.4f}  acc {m['accuracy']:.3f}  "
             f"{extra(m)}{rate:.2f} steps/s  {rate * schedule.batch_size:.0f} img/s  "
             f"ETA {fmt_time(eta)}")
    self.write_metrics({"event": "train", **record(step, m), "steps_per_s": rate, "eta_s": eta,
                        "elapsed_s": self.prior_elapsed + now - self.t_start})

  # ------------------------------------------------------------------ the end
  def close_checkpoints(self) -> None:
    if self._ckpts is not None:
      self._ckpts.close()
      self._ckpts = None

  def publish(self, build: Callable[[], dict], sync_name: str) -> dict:
    """Process 0 builds and writes the done file (``build`` does every lead-only write and
    returns the JSON object); the others wait, then read it back."""
    path = os.path.join(self.workdir, self.done_file)
    result = None
    if self.lead:
      result = build()
      atomic.write_json(path, result)
    sharding.sync(sync_name)
    return result if result is not None else atomic.read_json(path)

