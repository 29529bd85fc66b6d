"""A study's results as data, Markdown and plots. A row's victim accuracies are keyed by ρa in
JSON (object keys are strings): [`radius_key`][sem_jax.suites.study.table.radius_key] writes
the key of a radius and [`radii`][sem_jax.suites.study.table.radii] reads the radii back as
numbers, so the code handles radii as numbers and the key format lives here alone."""
from __future__ import annotations

import os
import time

from sem_jax.files import atomic
from sem_jax.run import machine
from sem_jax.run.plots import bar_plot, line_plot
from sem_jax.suites import leaderboard
from sem_jax.suites.study.spec import StudyConfig


def radius_key(r: float) -> str:
  """The JSON key of victim radius ρa (pixel levels): ``4.0 -> "4"``, ``0.5 -> "0.5"``."""
  return f"{float(r):g}"


def radii(row: dict) -> list[float]:
  """The victim radii of a result row, as numbers, ascending."""
  return sorted(float(k) for k in row["accuracy"])


def write_tables(cfg: StudyConfig, workdir: str, rows: list[dict], t0: float, complete: bool,
           extra: dict | None = None) -> dict:
  """{name}.json, {name}.md and the plots of the rows finished so far (rewritten after each).

  ``workers`` (how many experiments at most shared the machine) keeps the largest any run of
  this study in the workdir used: its rows stay in the table when a later run adds some."""
  path = os.path.join(workdir, f"{cfg.name}.json")
  extra = dict(extra or {})
  try:
    before = atomic.read_json(path).get("workers", 1) if os.path.exists(path) else 1
  except (SemJaxError, AttributeError):   # an unreadable earlier table: rewritten below
    before = 1
  workers = max(before, extra.get("workers", 1))
  if workers > 1:
    extra["workers"] = workers
  result = {"title": cfg.title, "complete": complete, "rows": rows, **extra,
            "machines": machines(rows),
            "this_session_wall_time_s": time.time() - t0,
            "total_compute_s": total_compute_s(rows),
            "config": cfg.to_dict()}
  atomic.write_json(path, result)
  atomic.write_text(os.path.join(workdir, f"{cfg.name}.md"), markdown(result))
  for group in dict.fromkeys(r["group"] for r in rows):
    plot(result, group, plot_path(workdir, cfg.name, group))
  if cfg.leaderboard:
    leaderboard.write(workdir, result, [e.to_dict() for e in cfg.experiments], cfg.title)
  return result


def total_compute_s(rows: list[dict]) -> float:
  """Seconds of compute behind ``rows``: every victim's training, and each noise's generation
  once however many rows (one per defense, on a leaderboard) train on that noise. A row that
  names no noise (clean data, or a table written before rows named it) counts its own."""
  generation = {}
  for i, r in enumerate(rows):
    generation.setdefault(r.get("noise") or ("row", i), r["generation_s"])
  return sum(generation.values()) + sum(sum(r["victim_s"].values()) for r in rows)


def machines(rows: list[dict]) -> list[str]:
  """The machines the rows' noise and victims were computed on, one line each
  ([`sem_jax.run.machine.line`][sem_jax.run.machine.line]), in order of first appearance;
  "not recorded" for rows finished before machines were kept."""
  seen = [machine.line(r.get(k)) for r in rows for k in ("generation_machine", "machine")
          if k in r]
  return list(dict.fromkeys(seen))


def plot_path(workdir: str, study: str, group: str) -> str:
  """{workdir}/{study}-{group}.png, a path separator in the group's name made '-'."""
  return os.path.join(workdir, f"{study}-{group}.png".replace("/", "-").replace("\\", "-"))

def _pct(v) -> str:
  return "-" if v is None else f"{100 * v:.1f}"


def markdown(result: dict) -> str:
  """One table per group: victim clean test accuracy (%) per ρa, generation cost, surrogate."""
  note = ("Clean test accuracy (%) of victims trained on the protected data (lower = better "
          "protection); '-' where not run.")
  if result.get("workers", 1) > 1:
    note += (f" Up to {result['workers']} experiments ran at once (study --workers): a time is "
             "the piece's wall time on the shared machine.")
  kinds = sorted({r["device_kind"] for r in result["rows"] if r.get("device_kind")})
  if kinds:
    note += f" Devices: {', '.join(kinds)}."
  if result.get("machines"):
    note += f" Computed on: {'; '.join(result['machines'])}."
  mixed = len(kinds) > 1        # rows from several machines: each row names its own
  out = [f"# {result['title']}" + ("" if result.get("complete", True) else
                                     " (partial: the study is still running)") + "\n",
         note + "\n"]
  groups = list(dict.fromkeys(r["group"] for r in result["rows"]))
  for group in groups:
    rows = [r for r in result["rows"] if r["group"] == group]
    all_radii = sorted({x for r in rows for x in radii(r)})
    out.append(f"\n## {group}\n")
    out.append("| experiment | " + " | ".join(f"ρa {radius_key(x)}" for x in all_radii)
               + " | generation | surrogate clean / robust acc |" + (" device |" if mixed else ""))
    out.append("|---" * (len(all_radii) + 3 + mixed) + "|")
    for r in rows:
      cells = [_pct(r["accuracy"].get(radius_key(x))) for x in all_radii]
      gen = "-" if r["method"] == "clean" else f"{r['generation_s']:.0f} s"
      sur = f"{_pct(r['surrogate_clean_test_accuracy'])} / {_pct(r['surrogate_robust_test_accuracy'])}"
      dev = f" {r.get('device_kind') or '-'} |" if mixed else ""
      out.append(f"| {r['label']} | " + " | ".join(cells) + f" | {gen} | {sur} |" + dev)
  return "\n".join(out) + "\n"


def plot(result: dict, group: str, path: str) -> None:
  """study-{group}.png: victim clean accuracy (%) against ρa, one line per experiment; a bar
  per experiment where the whole group has victims at one ρa only."""
  rows = [r for r in result["rows"] if r["group"] == group]
  keys = {k for r in rows for k in r["accuracy"]}
  if len(keys) == 1 and all(len(r["accuracy"]) == 1 for r in rows):
    (ra,) = keys
    bar_plot(path, [(r["label"], 100 * r["accuracy"][ra], r["method"] == "clean")
                    for r in rows],
             xlabel=f"clean test accuracy (%) of victims at PGD-AT ρa {ra}",
             xlim=(0, 100), title=group)
    return
  series = []
  for r in rows:
    xs = radii(r)
    series.append((r["label"], xs, [100 * r["accuracy"][radius_key(x)] for x in xs],
                   "--" if r["method"] == "clean" else "-"))
  line_plot(path, series, xlabel="victim PGD-AT radius ρa (pixel levels /255)",
            ylabel="clean test accuracy (%)", ylim=(0, 100), title=group)
