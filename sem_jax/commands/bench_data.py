"""``run.py bench-data``: the data path at scale, measured on a synthetic ImageNet-shaped folder.

Writes N smooth synthetic JPEGs (size x size x 3, ``classes`` class folders) once, then runs
each phase as its own ``run.py`` process and records its wall time and peak resident memory
(``os.wait4``'s ru_maxrss, which also counts the pages of memory-mapped files, and the peak
private memory, RssAnon, sampled from /proc): ``prepare`` (decode and cache), ``reopen`` (the second start),
``generate`` (SEM, a few steps and a checkpoint, small CNN), ``generate_random`` (a finished
run to publish), ``export`` (npy), ``verify`` (run + export) and ``evaluate`` (a victim, a
few steps, and its final accuracy passes). Checkpoint save time comes from the generate
run's metrics.jsonl. Numbers depend on the machine: compare them within one run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

from sem_jax.files import atomic
from sem_jax.run.metrics import METRICS_FILE


def synth_folder(root: str, n: int, size: int, classes: int, seed: int = 0) -> str:
  """n JPEGs (quality 90) of smooth random colour fields, round-robin over class folders;
  kept if already complete."""
  from PIL import Image
  done = os.path.join(root, ".complete")
  if os.path.exists(done) and atomic.read_json(done) == {"n": n, "size": size, "classes": classes}:
    return root
  rng = np.random.default_rng(seed)
  for i in range(n):
    c = i % classes
    d = os.path.join(root, f"c{c:03d}")
    os.makedirs(d, exist_ok=True)
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    img.save(os.path.join(d, f"{i:07d}.jpg"), quality=90)
  atomic.write_json(done, {"n": n, "size": size, "classes": classes})
  return root


def _config_file(path: str, kind: str, fields: dict) -> str:
  with open(path, "w") as f:
    f.write(f"from sem_jax.run.config import {kind}\n\n\ndef get_config():\n"
            f"  return {kind}(**{fields!r})\n")
  return path


def _sample(pid: int, peaks: dict, stop: threading.Event) -> None:
  """Poll /proc/PID/status every 50 ms: peak RssAnon (private memory) and RssFile (pages of
  memory-mapped files: the prepared cache, noise.npy; clean page cache the kernel reclaims)."""
  while not stop.is_set():
    try:
      with open(f"/proc/{pid}/status") as f:
        for line in f:
          key, _, rest = line.partition(":")
          if key in ("RssAnon", "RssFile"):
            peaks[key] = max(peaks.get(key, 0), int(rest.split()[0]) * 1024)
    except (OSError, ValueError, IndexError):
      pass
    stop.wait(0.05)


def _phase(args: list[str], log_path: str) -> dict:
  """Run ``run.py args``: wall seconds, peak RSS (GiB, ru_maxrss: private and mapped file
  pages together) and, where /proc exists, peak private (RssAnon) and file-backed memory."""
  t0 = time.time()
  peaks: dict = {}
  stop = threading.Event()
  with open(log_path, "w") as log:
    p = subprocess.Popen([sys.executable, "-m", "sem_jax", *args], stdout=log, stderr=subprocess.STDOUT,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    sampler = threading.Thread(target=_sample, args=(p.pid, peaks, stop), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(p.pid, 0)
    stop.set()
    sampler.join()
  wall = time.time() - t0
  code = os.waitstatus_to_exitcode(status)
  if code != 0:
    raise RuntimeError(f"run.py {' '.join(args)} failed ({code}); see {log_path}")
  out = {"wall_s": round(wall, 2), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3)}
  if peaks:
    out["peak_private_gib"] = round(peaks.get("RssAnon", 0) / 2**30, 3)
    out["peak_mapped_files_gib"] = round(peaks.get("RssFile", 0) / 2**30, 3)
  return out


def run_bench_data(workdir: str, n: int, size: int, classes: int, steps: int) -> dict:
  os.makedirs(workdir, exist_ok=True)
  t0 = time.time()
  images = synth_folder(os.path.join(workdir, "images"), n, size, classes)
  synth_s = time.time() - t0
  cache = os.path.join(workdir, "cache")
  common = {"dataset": "folder", "data_dir": images, "data_cache": cache, "test_fraction": 0.02,
            "model": "small_cnn", "model_width": 8, "batch_size": 32, "unroll_loops": False}
  gen = _config_file(os.path.join(workdir, "gen.py"), "GenerateConfig", {
      **common, "method": "sem", "train_steps": 1000, "noise_steps": 2, "num_samples": 1,
      "adv_steps": 1, "checkpoint_every": steps, "stop_after_step": steps, "log_every": 1,
      "noise_format": "npy"})
  rnd = _config_file(os.path.join(workdir, "random.py"), "GenerateConfig",
                     {**common, "method": "random"})
  ev = _config_file(os.path.join(workdir, "eval.py"), "EvalConfig", {
      **common, "train_steps": steps, "eval_every": steps, "log_every": 1,
      "checkpoint_every": steps})
  out: dict = {"images": n, "image_shape": [size, size, 3], "synth_s": round(synth_s, 1),
               "table_gib": round(n * size * size * 3 / 2**30, 3)}
  logs = os.path.join(workdir, "logs")
  os.makedirs(logs, exist_ok=True)
  for name, args in (
      ("prepare", ["prepare", "--config", gen]),
      ("reopen", ["prepare", "--config", gen]),
      ("generate", ["generate", "--config", gen, "--workdir", os.path.join(workdir, "sem")]),
      ("generate_random", ["generate", "--config", rnd, "--workdir", os.path.join(workdir, "rnd")]),
      ("export", ["export", "--noise", os.path.join(workdir, "rnd"), "--format", "npy",
                  "--out", os.path.join(workdir, "export")]),
      ("verify", ["verify", "--noise", os.path.join(workdir, "rnd"), "--export",
                  os.path.join(workdir, "export")]),
      ("evaluate", ["evaluate", "--config", ev, "--noise", os.path.join(workdir, "rnd"),
                    "--workdir", os.path.join(workdir, "eval")])):
    out[name] = _phase(args, os.path.join(logs, f"{name}.log"))
  with open(os.path.join(workdir, "sem", METRICS_FILE)) as f:
    saves = [r["save_s"] for r in map(json.loads, f) if r.get("event") == "checkpoint"]
  out["checkpoint_save_s"] = round(max(saves), 2) if saves else None
  return out


def format_rows(results: list[dict]) -> str:
  """A markdown table: one row per measured size."""
  phases = ("prepare", "reopen", "generate", "generate_random", "export", "verify", "evaluate")
  head = ("| images | table GiB | " + " | ".join(f"{p}: s / private GiB / RSS GiB" for p in phases)
          + " | checkpoint save s |")
  lines = [head, "|" + " --- |" * (len(phases) + 3)]
  for r in results:
    cells = [f"{r[p]['wall_s']:.1f} / {r[p].get('peak_private_gib', float('nan')):.2f} / "
             f"{r[p]['peak_rss_gib']:.2f}" for p in phases]
    lines.append(f"| {r['images']} | {r['table_gib']:.2f} | " + " | ".join(cells)
                 + f" | {r['checkpoint_save_s']} |")
  return "\n".join(lines)
