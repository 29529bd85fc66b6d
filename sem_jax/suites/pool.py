"""Several experiments of one or more studies at once, as worker processes on one machine.

A small surrogate or victim leaves an accelerator mostly idle (each step is a few tiny
kernels), so a study on a GPU runs fastest as N independent processes sharing it. The pool
takes the experiments of every study given (an experiment several studies list runs once),
starts each in its own process (``python -m sem_jax.suites.pool TASK``) in listed order, at
most N at a time, a TAP experiment only after its group's clean experiment (it attacks that
clean victim) and an experiment that reuses another's noise only after the one generating
it, and rewrites every study's tables each time an experiment ends. A worker runs
its experiment's pieces exactly as the sequential study does, so each resumes from its
checkpoints and gives the same numbers on the same device count; SIGTERM to the pool stops
every worker at its next step boundary (each checkpoints) and the next run continues.

    {workdir}/pool/{experiment}.json      the task: the experiment (and its clean one for TAP)
    {workdir}/pool/{experiment}.log       the worker's output
    {workdir}/pool/{experiment}.row.json  its table row, once it has finished

Times in the tables are each piece's wall time while up to N pieces shared the machine.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Callable

from sem_jax.errors import SemJaxError
from sem_jax.files import atomic
from sem_jax.run import loop
from sem_jax.suites import study as S

POOL_DIR = "pool"
STOPPED = 3   # a worker's exit code when SIGTERM stopped it (its pieces checkpointed)


def run_pool(cfgs: list, workdir: str, workers: int,
             log: Callable[[str], None] = print) -> list[dict] | None:
  """Run the studies ``cfgs`` with ``workers`` worker processes; each study's result dict
  (as [`sem_jax.study.run_study`][sem_jax.study.run_study] returns), or None when SIGTERM stopped the pool."""
  if workers < 1:
    raise SemJaxError(f"workers must be >= 1, got {workers}")
  cfgs = [c.validate() for c in cfgs]
  if len({c.name for c in cfgs}) != len(cfgs):
    raise SemJaxError("two studies of one run share a name; their tables would overwrite "
                      "each other")
  # One list across the studies: a name two studies use must name the same experiment.
  S.StudyConfig(experiments=tuple(e for c in cfgs for e in c.experiments), name="all").validate()
  with S.workdir_lock(workdir):
    return _run_pool(cfgs, workdir, workers, log)


def _run_pool(cfgs: list, workdir: str, workers: int, log) -> list[dict] | None:
  pool = os.path.join(workdir, POOL_DIR)
  atomic.make_dir(pool)
  for c in cfgs:
    atomic.write_json(os.path.join(workdir, f"{c.name}_config.json"), c.to_dict())
  tasks, needs = _plan(cfgs)
  done = {n: r for n in tasks if (r := _finished_row(pool, tasks[n][0])) is not None}
  pending = [n for n in tasks if n not in done]
  log(f"study pool: {len(tasks)} experiments ({len(done)} finished before), {workers} workers, "
      f"workdir {workdir}")
  t0, running, failed, durations = time.time(), {}, {}, []

  def tables() -> list[dict]:   # each study complete once all its experiments are
    return [S.write_tables(c, workdir, [_listed(done[e.name], e) for e in c.experiments
                                  if e.name in done], t0,
                     all(e.name in done for e in c.experiments), extra={"workers": workers})
            for c in cfgs]

  with loop.StopSignal() as stop:
    while pending or running:
      if stop.requested:
        log(f"study pool: SIGTERM received; stopping {len(running)} worker(s) at their next "
            f"step boundary (each checkpoints)")
        for p, _ in running.values():
          p.terminate()
        for p, _ in running.values():
          p.wait()
        tables()
        log("stopped; re-run the same command to continue")
        return None
      for name, (p, start) in list(running.items()):
        rc = p.poll()
        if rc is None:
          continue
        del running[name]
        if rc == 0 and (row := _finished_row(pool, tasks[name][0])) is not None:
          done[name] = row
          durations.append(time.time() - start)
          left = len(pending) + len(running)
          eta = sum(durations) / len(durations) * left / workers
          accs = " ".join(f"ρa {k} {100 * v:.1f}" for k, v in row["accuracy"].items())
          log(f"[{len(done)}/{len(tasks)}] {name}: {accs} % (generation "
              f"{row['generation_s']:.0f} s; task {time.time() - start:.0f} s); "
              f"{time.time() - t0:.0f} s elapsed, ~{eta:.0f} s left for {left} more")
          tables()
        else:
          failed[name] = rc
          log(f"study pool: {name} FAILED (exit {rc}); last lines of {_log_path(pool, name)}:\n"
              + _tail(_log_path(pool, name)))
      for name in list(pending):
        if len(running) >= workers:
          break
        if needs[name] & set(failed):
          pending.remove(name)
          failed[name] = f"needs {', '.join(sorted(needs[name] & set(failed)))}, which failed"
        elif needs[name] <= set(done):
          pending.remove(name)
          running[name] = (_start(pool, workdir, name, tasks[name]), time.time())
      if running:
        time.sleep(0.5)
  results = tables()
  for r in results:
    log(S.markdown(r))
  log(f"study pool: {len(done)} experiments done in {time.time() - t0:.0f} s with {workers} "
      f"workers; tables in {workdir}")
  if failed:
    raise SemJaxError(f"{len(failed)} experiment(s) failed ({', '.join(failed)}); see "
                      f"{os.path.join(workdir, POOL_DIR)}/NAME.log")
  return results


def _plan(cfgs: list) -> tuple[dict, dict]:
  """The pool's tasks: experiment name -> the experiments its worker gets (the experiment,
  then for TAP its clean one), and name -> the names it must wait for."""
  # One task per experiment name, its victims at every ρa any listing of it asks for.
  radii: dict[str, set] = {}
  for c in cfgs:
    for e in c.experiments:
      radii.setdefault(e.name, set()).update(e.adv_radii)
  merged = lambda e: dataclasses.replace(e, adv_radii=tuple(sorted(radii[e.name])))
  # A task waits for the tasks it needs: TAP for its group's clean experiment (whose victim it
  # attacks), an experiment that reuses another's noise (``noise=``) for the one generating it.
  tasks, needs = {}, {}   # name -> experiments the worker gets; name -> names it waits for
  makers: dict[str, str] = {}   # noise name -> the task that generates it
  for c in cfgs:
    for e in c.experiments:
      if e.name in tasks:
        continue
      clean = S.clean_of(c, e) if S.fixed_model(e.generate) else None
      tasks[e.name] = [merged(e)] + ([merged(clean)] if clean is not None else [])
      needs[e.name] = {clean.name} if clean is not None else set()
      if e.generate is not None:
        maker = makers.setdefault(e.noise_name, e.name)
        if maker != e.name:
          needs[e.name].add(maker)
      if clean is not None:   # a TAP task's clean experiment is run as its own task
        tasks.setdefault(clean.name, [merged(clean)])
        needs.setdefault(clean.name, set())
  return tasks, needs


def _listed(row: dict, e: S.Experiment) -> dict:
  """A task's row as listing ``e`` shows it: its group, its label, its ρa columns."""
  keep = {S.radius_key(r) for r in e.adv_radii}
  return {**row, "group": e.group, "label": e.label or e.name,
          "accuracy": {k: v for k, v in row["accuracy"].items() if k in keep},
          "victim_s": {k: v for k, v in row["victim_s"].items() if k in keep}}


def _log_path(pool: str, name: str) -> str:
  return os.path.join(pool, f"{name}.log")


def _row_path(pool: str, name: str) -> str:
  return os.path.join(pool, f"{name}.row.json")


def _finished_row(pool: str, e: S.Experiment) -> dict | None:
  """The row a worker recorded for ``e``: the same run, with victims at every ρa of ``e``
  (a row with more, from a study that asked for more, serves too)."""
  path = _row_path(pool, e.name)
  if not os.path.exists(path):
    return None
  rec = atomic.read_json(path)
  want = json.loads(json.dumps(_identity(e)))
  same = {k: v for k, v in rec.get("experiment", {}).items() if k != "adv_radii"} == \
      {k: v for k, v in want.items() if k != "adv_radii"}
  return rec["row"] if same and {S.radius_key(r) for r in e.adv_radii} <= set(rec["row"]["accuracy"]) \
      else None


def _identity(e: S.Experiment) -> dict:
  """What makes two listings the same run (not the group or label they are shown under)."""
  d = e.to_dict()
  return {k: d[k] for k in ("name", "evaluation", "adv_radii", "generate", "noise", "noise_dir")
          if k in d}


def _start(pool: str, workdir: str, name: str, experiments: list) -> subprocess.Popen:
  task = os.path.join(pool, f"{name}.json")
  atomic.write_json(task, {"workdir": os.path.abspath(workdir),
                              "experiments": [e.to_dict() for e in experiments]})
  env = dict(os.environ)
  env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")   # N processes share one GPU
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
  with open(_log_path(pool, name), "ab") as out:
    return subprocess.Popen([sys.executable, "-m", "sem_jax.suites.pool", task], env=env,
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _tail(path: str, n: int = 15) -> str:
  try:
    with open(path, errors="replace") as f:
      return "".join(f.readlines()[-n:])
  except OSError:
    return "(no log)"


def worker(task_path: str) -> int:
  """Run one task file's experiment (the first listed); record its row. Exit code 0, or
  STOPPED when SIGTERM stopped it."""
  from sem_jax.run.runtime import enable_compilation_cache
  enable_compilation_cache()
  task = atomic.read_json(task_path)
  exps = [S.Experiment.from_dict(d) for d in task["experiments"]]
  cfg = S.StudyConfig(experiments=tuple(exps), name="task")
  log = lambda s: print(s, flush=True)
  with loop.StopSignal():
    row = S.run_experiment(cfg, exps[0], task["workdir"], log, None)
  if row is None:
    return STOPPED
  pool = os.path.dirname(task_path)
  atomic.write_json(_row_path(pool, exps[0].name), {"experiment": _identity(exps[0]),
                                                       "row": row})
  return 0


if __name__ == "__main__":
  try:
    sys.exit(worker(sys.argv[1]))
  except SemJaxError as err:
    print(f"error: {err}", flush=True)
    sys.exit(2)
