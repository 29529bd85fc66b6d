"""Running a study: each experiment's generation and victims, in order, resumable piece by
piece, the tables rewritten after each experiment."""
from __future__ import annotations

import os
import time
from typing import Callable

from sem_jax.commands.evaluate import evaluate_noise
from sem_jax.commands.generate import generate_noise
from sem_jax.run import loop
from sem_jax.run.artifacts import Manifest, read_manifest
from sem_jax.files import atomic
from sem_jax.suites.study.lock import workdir_lock
from sem_jax.suites.study.spec import (Experiment, StudyConfig, clean_of, fixed_model,
                                       reference_radius)
from sem_jax.suites.study.table import markdown, radius_key, write_tables


def victim_dir(workdir: str, e: Experiment, r: float) -> str:
  """eval/{experiment}-ra{ρa}, the '.' of a fractional ρa written 'p' (ra0p5)."""
  return os.path.join(workdir, "eval", f"{e.name}-ra{radius_key(r).replace('.', 'p')}")


def run_study(cfg: StudyConfig, workdir: str, log: Callable[[str], None] = print,
              devices=None) -> dict | None:
  """Run (or continue) the study; return its result dict, or None if a piece was stopped
  (SIGTERM: the running piece checkpoints, no new piece starts)."""
  cfg = cfg.validate()   # a bad config stops before the workdir is made
  with loop.StopSignal() as stop, workdir_lock(workdir):
    return _run_study(cfg, workdir, log, devices, stop)


def _run_study(cfg: StudyConfig, workdir: str, log, devices, stop) -> dict | None:
  atomic.write_json(os.path.join(workdir, f"{cfg.name}_config.json"), cfg.to_dict())
  t0 = time.time()
  rows = []
  for e in cfg.experiments:   # in the listed order: put what matters most first
    if stop.stopped(log, f"experiment {e.name}"):
      return None
    if fixed_model(e.generate):
      if run_experiment(cfg, clean_of(cfg, e), workdir, log, devices) is None:
        return None
    row = run_experiment(cfg, e, workdir, log, devices)
    if row is None:
      return None
    rows.append({**row, "group": e.group, "label": e.label or e.name})
    result = write_tables(cfg, workdir, rows, t0, complete=len(rows) == len(cfg.experiments))
  log(markdown(result))
  log(f"wrote {workdir}/{cfg.name}.json, {cfg.name}.md and one plot per group "
      f"(compute {result['total_compute_s'] / 60:.1f} min)")
  return result

def run_experiment(cfg, e: Experiment, workdir, log, devices) -> dict | None:
  """Generate (unless clean) and train every victim of one experiment; its table row."""
  noise_dir, row = None, {"name": e.name, "group": e.group, "label": e.label or e.name,
                          "method": e.generate.method if e.generate else "clean",
                          "generation_s": 0.0, "surrogate_clean_test_accuracy": None,
                          "surrogate_robust_test_accuracy": None}
  if e.noise_dir:
    given = read_manifest(e.noise_dir, "noise run")
    noise_dir = e.noise_dir
    row["generation_machine"] = given.raw.get("machine")
    row.update(noise=os.path.abspath(e.noise_dir), method=given.method,
               generation_s=given.wall_time_s,
               surrogate_clean_test_accuracy=given.surrogate_clean_test_accuracy,
               surrogate_robust_test_accuracy=given.surrogate_robust_test_accuracy)
  if e.generate is not None:
    g = e.generate
    if fixed_model(g):
      clean = clean_of(cfg, e)
      g = g.replace(tap_model=os.path.abspath(victim_dir(workdir, clean,
                                                         reference_radius(clean, g))))
    noise_dir = os.path.join(workdir, "noise", e.noise_name)
    log(f"== noise: {e.noise_name} -> {noise_dir}")
    raw = generate_noise(g, noise_dir, log=log, devices=devices)
    if raw is None:
      return None
    m = Manifest(noise_dir, raw)
    row["generation_machine"] = m.raw.get("machine")   # None: made before machines were kept
    row.update(noise=f"noise/{e.noise_name}", generation_s=m.wall_time_s,
               surrogate_clean_test_accuracy=m.surrogate_clean_test_accuracy,
               surrogate_robust_test_accuracy=m.surrogate_robust_test_accuracy)
  row["accuracy"], row["victim_s"] = {}, {}
  for r in e.adv_radii:
    out = victim_dir(workdir, e, r)
    log(f"== victim: {e.name}, PGD-AT ρa {r:g} -> {out}")
    res = evaluate_noise(e.evaluation.replace(adv_radius=r), noise_dir, out, log=log,
                         devices=devices)
    if res is None:
      return None
    row["accuracy"][radius_key(r)] = res["final"]["test_accuracy"]
    row["victim_s"][radius_key(r)] = res["wall_time_s"]
    row["device_kind"] = res.get("device_kind")   # where the victims ran (cpu, NVIDIA H200...)
    row["machine"] = res.get("machine")             # its CPU (run.machine); None: not recorded
  return row
