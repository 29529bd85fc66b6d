"""A study's seed spread: each cell as the mean and range of its replicates (``study --seeds``).

One seed's victim accuracy says little on its own: on MNIST-5k two seeds of one cell differ by
up to 23 points, and so do two CPU generations at one seed (docs/protection.md). ``study
--seeds 0,1,2`` runs the study at each seed ([`replicate`][sem_jax.suites.study.spec.replicate])
and writes, beside the replicates' own tables:

    {study}-spread.json   every cell: its accuracy per seed, mean, min and max; the machines
    {study}-spread.md     one table per group, cells "mean (min-max)" in %

A row enters the spread when every seed's table has it (rows the config seeds itself are not
replicated, so they stay out).
"""
from __future__ import annotations

import os
import re
import statistics

from sem_jax.errors import SemJaxError
from sem_jax.files import atomic
from sem_jax.suites.study.spec import StudyConfig, replicate
from sem_jax.suites.study.table import radii, radius_key


def parse_seeds(text: str) -> tuple[int, ...]:
  """``"0,1,2"`` or ``"0-4"`` -> the seeds, ascending, each once; at least two."""
  seeds: set[int] = set()
  for part in str(text).split(","):
    part = part.strip()
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
    if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
      raise SemJaxError(f"--seeds {text!r}: give seeds >= 0 as 0,1,2 or 0-2")
    seeds.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
  if len(seeds) < 2:
    raise SemJaxError(f"--seeds {text!r}: a spread needs at least two seeds (one seed: --seed)")
  return tuple(sorted(seeds))


def _base_name(name: str, seed: int) -> str:
  sfx = f"-seed{seed}"
  return name[:-len(sfx)] if seed and name.endswith(sfx) else name


def spread(cfg: StudyConfig, workdir: str, seeds) -> dict:
  """The spread of study ``cfg`` over ``seeds`` from the replicates' tables in ``workdir``
  (``{name}.json`` for seed 0, ``{name}-seed{s}.json`` for the others). Accuracies are
  fractions, as in the study's tables. Raises when a replicate's table is missing."""
  tables = {}
  for s in seeds:
    path = os.path.join(workdir, f"{replicate(cfg, s).name}.json")
    if not os.path.exists(path):
      raise SemJaxError(f"{path}: seed {s} of study {cfg.name!r} has no table yet (run "
                        f"study --seed {s}, or --seeds, on this workdir first)")
    tables[s] = atomic.read_json(path)
  by_seed = {s: {(r["group"], _base_name(r["name"], s)): r for r in t["rows"]}
             for s, t in tables.items()}
  rows = []
  for e in cfg.experiments:
    key = (e.group, e.name)
    if key in {(r["group"], r["name"]) for r in rows} or not all(key in by_seed[s] for s in seeds):
      continue
    first = by_seed[seeds[0]][key]
    cells = {}
    for x in radii(first):
      k = radius_key(x)
      got = {str(s): by_seed[s][key]["accuracy"].get(k) for s in seeds}
      vals = [v for v in got.values() if v is not None]
      if len(vals) == len(seeds):
        cells[k] = {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals),
                    "seeds": got}
    rows.append({"group": e.group, "name": e.name, "label": e.label or e.name,
                 "method": first.get("method"), "accuracy": cells})
  machines = list(dict.fromkeys(m for t in tables.values() for m in t.get("machines", [])))
  return {"title": f"{cfg.title}: mean and range over seeds {', '.join(map(str, seeds))}",
          "study": cfg.name, "seeds": list(seeds),
          "complete": all(t.get("complete", False) for t in tables.values()),
          "machines": machines, "rows": rows}


def markdown(result: dict) -> str:
  """One table per group: each cell "mean (min-max)" of the victims' clean test accuracy (%)."""
  pct = lambda v: f"{100 * v:.1f}"
  note = (f"Clean test accuracy (%) of victims trained on the protected data, mean (min-max) "
          f"over seeds {', '.join(map(str, result['seeds']))} (each seed reseeds the noise's "
          "surrogate and the victim).")
  if result.get("machines"):
    note += f" Computed on: {'; '.join(result['machines'])}."
  out = [f"# {result['title']}" + ("" if result["complete"] else " (partial)") + "\n", note + "\n"]
  for group in dict.fromkeys(r["group"] for r in result["rows"]):
    rows = [r for r in result["rows"] if r["group"] == group]
    keys = sorted({k for r in rows for k in r["accuracy"]}, key=float)
    out += [f"\n## {group}\n", "| experiment | " + " | ".join(f"ρa {k}" for k in keys) + " |",
            "|---" * (len(keys) + 1) + "|"]
    for r in rows:
      cells = [(lambda c: "-" if c is None else
                f"{pct(c['mean'])} ({pct(c['min'])}-{pct(c['max'])})")(r["accuracy"].get(k))
               for k in keys]
      out.append(f"| {r['label']} | " + " | ".join(cells) + " |")
  return "\n".join(out) + "\n"


def write_spread(cfg: StudyConfig, workdir: str, seeds) -> dict:
  """Write ``{study}-spread.json`` and ``{study}-spread.md`` in ``workdir``; return the spread."""
  result = spread(cfg, workdir, seeds)
  atomic.write_json(os.path.join(workdir, f"{cfg.name}-spread.json"), result)
  atomic.write_text(os.path.join(workdir, f"{cfg.name}-spread.md"), markdown(result))
  return result
