"""The leaderboard page's board from a recorded board and a workdir that computed more cells of
the same config: every recorded cell kept, each cell the recording lacks taken from the workdir's
rows, the rest '-'. Writes docs/leaderboard_mnist5k.json (with each cell's source), the table at
the head of docs/leaderboard_mnist5k.md (the prose below it kept) and the heat map.

The leaderboard's cells were computed in several sessions, on different CPUs: the recorded
board's 120 cells on a 2-core Intel Xeon, the cells added later (CUDA, EntF, GUE rows; COIN and
ECLIPSE columns) by `study` in a workdir on another machine. Each study row records its machine,
and this tool records it per source.

  python tools/board_merge.py WORKDIR [--recorded docs/leaderboard_mnist5k.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs.study import leaderboard_mnist5k as config   # noqa: E402
from sem_jax.run.plots import heat_map                      # noqa: E402
from sem_jax.suites import leaderboard                      # noqa: E402
from sem_jax.suites.study.runner import victim_dir          # noqa: E402

PAGE = os.path.join(ROOT, "docs", "leaderboard_mnist5k")


def workdir_rows(workdir: str) -> list[dict]:
  """A row per finished cell of the config in ``workdir`` (its victim's results.json), whatever
  study command (the sequential study or the pool, any subset) finished it."""
  rows = []
  for e in config.get_config().experiments:
    for r in e.adv_radii:
      path = os.path.join(victim_dir(workdir, e, r), "results.json")
      if os.path.exists(path):
        with open(path) as f:
          res = json.load(f)
        rows.append({"group": e.group, "label": e.label or e.name, "accuracy": {
            str(r): res["final"]["test_accuracy"]}, "machine": res.get("machine"),
            "method": e.generate.method if e.generate else "clean"})
  return rows


def merged(recorded: dict, rows: list[dict]) -> dict:
  """The config's board with every recorded cell, the workdir rows' cells where the record has
  none, and ``source[attack][defense]``: ``recorded``, ``added`` or None (not run)."""
  cfg = config.get_config()
  order = [{"group": e.group, "label": e.label or e.name} for e in cfg.experiments]
  new = leaderboard.pivot({"rows": rows}, order)
  acc = {a: dict(new["accuracy"][a]) for a in new["attacks"]}
  source = {a: {d: None if acc[a][d] is None else "added" for d in acc[a]} for a in acc}
  where = {(r["group"], r["label"]): _machine(r["machine"]) for r in rows
           if r.get("machine") and (r["method"] != "clean" or r["group"] == "clean")}
  kept = recorded.get("source", {})   # a merged board keeps each cell's first source
  for a, by_defense in recorded["accuracy"].items():
    for d, v in by_defense.items():
      if v is not None and a in acc and d in acc[a]:
        acc[a][d], source[a][d] = v, kept.get(a, {}).get(d) or "recorded"
  return {"title": cfg.title, "attacks": new["attacks"], "defenses": new["defenses"],
          "accuracy": acc, "source": source,
          "complete": all(v is not None for r in acc.values() for v in r.values()),
          "machines": {"recorded": recorded.get("machines", {}).get(
                           "recorded", recorded.get("machine", "2-core Intel Xeon (2.8 GHz)")),
                       "added": sorted({where[(a, d)] for a in acc for d in acc[a]
                                        if source[a][d] == "added" and (a, d) in where}
                                       | set(recorded.get("machines", {}).get("added", [])))}}


def _machine(m: dict) -> str:
  return f"{m.get('cpu', '?')} (family {m.get('cpu_family', '?')} model {m.get('cpu_model', '?')})"


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("workdir")
  p.add_argument("--recorded", default=PAGE + ".json")
  args = p.parse_args(argv)
  with open(args.recorded) as f:
    recorded = json.load(f)
  board = merged(recorded, workdir_rows(args.workdir))
  with open(PAGE + ".json", "w") as f:
    json.dump(board, f, indent=2, sort_keys=True)
    f.write("\n")
  head = leaderboard.markdown(board, board["title"], board["complete"])
  with open(PAGE + ".md") as f:
    page = f.read()
  rest = page[page.index("\n## "):] if "\n## " in page else ""
  with open(PAGE + ".md", "w") as f:
    f.write(head + "\n![leaderboard](leaderboard_mnist5k.png)\n" + rest)
  values = [[None if board["accuracy"][a][d] is None else 100 * board["accuracy"][a][d]
             for d in board["defenses"]] for a in board["attacks"]]
  heat_map(PAGE + ".png", board["attacks"], board["defenses"], values,
           label="victim clean test accuracy (%)", title=board["title"])
  added = sum(v == "added" for r in board["source"].values() for v in r.values())
  missing = sum(v is None for r in board["source"].values() for v in r.values())
  print(f"board: {added} cells added, {missing} not run; wrote {PAGE}.json, .md, .png")


if __name__ == "__main__":
  main()
