"""The protection-efficacy benchmark: every method's noise against PGD-AT victims at several ρa.

Layout of the workdir (every piece resumes or is skipped when already finished, so
re-running the command continues an interrupted benchmark):

    efficacy_config.json          the benchmark's config (a different one is refused)
    eval/clean-ra{ρa}/            victims trained on clean data (clean-ra0 is TAP's model)
    noise/{method}/               generate runs (noise.npy, manifest.json, ...)
    eval/{label}-ra{ρa}/          victims of the given noise workdirs (``noise_dirs``)
    eval/{method}-ra{ρa}/         victims trained on that method's protected data
    efficacy.json, efficacy.md, efficacy.png
"""
from __future__ import annotations

import os
import time
from typing import Callable

from sem_jax import artifacts, loop
from sem_jax.config import EfficacyConfig
from sem_jax.evaluate import evaluate_noise
from sem_jax.generate import generate_noise
from sem_jax.manifest import Manifest, read_manifest

CONFIG_FILE = "efficacy_config.json"


def _radius_tag(r: float) -> str:
  return f"{r:g}".replace(".", "p")


def run_efficacy(cfg: EfficacyConfig, workdir: str, log: Callable[[str], None] = print,
                 devices=None) -> dict | None:
  """Run (or continue) the benchmark; return the efficacy dict, or None if a piece was stopped
  (SIGTERM: the running piece checkpoints, no new piece starts)."""
  with loop.StopSignal() as stop:
    return _run_efficacy(cfg, workdir, log, devices, stop)


def _run_efficacy(cfg: EfficacyConfig, workdir: str, log, devices, stop) -> dict | None:
  cfg = cfg.validate()
  # Rows of given noise (noise_dirs) may be added to a finished benchmark: every victim is
  # guarded by its own identity, which names its noise.
  loop.claim_suite(workdir, CONFIG_FILE, cfg.identity(), "benchmark")
  t0 = time.time()
  ev = cfg.evaluation
  radii = list(cfg.adv_radii)
  clean_std = os.path.join(workdir, "eval", "clean-ra0")
  victims: dict[tuple[str, float], dict] = {}

  def victim(method: str, r: float, noise_dir: str | None) -> bool:
    out = os.path.join(workdir, "eval", f"{method}-ra{_radius_tag(r)}")
    if stop.stopped(log, out):
      return False
    log(f"== victim: {method} data, PGD-AT ρa {r:g} -> {out}")
    res = evaluate_noise(ev.replace(adv_radius=r), noise_dir, out, log=log, devices=devices)
    if res is None:
      return False
    victims[(method, r)] = res
    return True

  # The clean standard victim is both the reference point and TAP's fixed model.
  if ("clean" in cfg.methods and 0.0 in radii) or "tap" in cfg.methods:
    if not victim("clean", 0.0, None):
      return None
  generation: dict[str, dict] = {}
  for m in cfg.methods:
    if m == "clean":
      continue
    g = cfg.generators[m]
    if m == "tap":
      g = g.replace(tap_model=os.path.abspath(clean_std))
    out = os.path.join(workdir, "noise", m)
    if stop.stopped(log, out):
      return None
    log(f"== noise: {m} -> {out}")
    manifest = generate_noise(g, out, log=log, devices=devices)
    if manifest is None:
      return None
    made = Manifest(out, manifest)
    generation[m] = {"wall_time_s": made.wall_time_s, "dir": out,
                     "noise_max_abs": made.noise_max_abs,
                     "surrogate_clean_test_accuracy": made.surrogate_clean_test_accuracy}
  for label, d in cfg.noise_dirs.items():   # noise made elsewhere (import-noise, other runs)
    given = read_manifest(d, "noise run")
    generation[label] = {"wall_time_s": given.wall_time_s, "dir": os.path.abspath(d),
                         "noise_max_abs": given.noise_max_abs,
                         "surrogate_clean_test_accuracy": given.surrogate_clean_test_accuracy}
  rows = list(cfg.methods) + list(cfg.noise_dirs)
  for m in rows:
    for r in radii:
      if (m, r) in victims:
        continue
      if not victim(m, r, None if m == "clean" else generation[m]["dir"]):
        return None
  table = {m: {f"{r:g}": victims[(m, r)]["final"]["test_accuracy"] for r in radii}
           for m in rows}
  result = {
      "adv_radii": radii, "methods": rows,
      "clean_test_accuracy": table,
      "generation_wall_time_s": {m: (generation[m]["wall_time_s"] if m in generation else 0.0)
                                 for m in rows},
      "victim_wall_time_s": {f"{m}@{r:g}": victims[(m, r)]["wall_time_s"]
                             for m in rows for r in radii},
      "this_session_wall_time_s": time.time() - t0,
      "total_compute_s": (sum(g["wall_time_s"] for g in generation.values())
                          + sum(v["wall_time_s"] for v in victims.values())),
      "config": cfg.to_dict(),
  }
  artifacts.write_json(os.path.join(workdir, "efficacy.json"), result)
  md = markdown_table(result)
  artifacts.write_text(os.path.join(workdir, "efficacy.md"), md)
  plot(result, os.path.join(workdir, "efficacy.png"))
  log(md)
  log(f"wrote {workdir}/efficacy.json, efficacy.md, efficacy.png "
      f"(compute {result['total_compute_s'] / 60:.1f} min)")
  return result


def markdown_table(result: dict) -> str:
  """Clean-test accuracy (%) per method (rows) and victim ρa (columns), plus generation time."""
  radii = [f"{r:g}" for r in result["adv_radii"]]
  acc = result["clean_test_accuracy"]
  noisy = [m for m in result["methods"] if m != "clean"]
  best = {r: min(acc[m][r] for m in noisy) for r in radii} if noisy else {}
  head = ("| noise | " + " | ".join(f"ρa = {r}/255" for r in radii) + " | generation time |\n"
          + "|---" * (len(radii) + 2) + "|\n")
  rows = []
  for m in result["methods"]:
    cells = [f"**{100 * acc[m][r]:.1f}**" if m != "clean" and acc[m][r] == best[r]
             else f"{100 * acc[m][r]:.1f}" for r in radii]
    gen = "-" if m == "clean" else f"{result['generation_wall_time_s'][m]:.0f} s"
    rows.append(f"| {m} | " + " | ".join(cells) + f" | {gen} |")
  return ("Clean test accuracy (%) of victims trained on the protected data "
          "(lower = better protection; bold = lowest per column)\n\n" + head + "\n".join(rows) + "\n")


def plot(result: dict, path: str) -> None:
  """efficacy.png: clean test accuracy (%) against the victim's ρa, one line per method."""
  radii = result["adv_radii"]
  artifacts.line_plot(
      path, [(m, radii, [100 * result["clean_test_accuracy"][m][f"{r:g}"] for r in radii],
              "--" if m == "clean" else "-") for m in result["methods"]],
      xlabel="victim PGD-AT radius ρa (pixel levels /255)", ylabel="clean test accuracy (%)",
      ylim=(0, 100), title="protection efficacy (lower = better)")
