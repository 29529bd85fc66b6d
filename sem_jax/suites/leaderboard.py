"""The attack x defense leaderboard of a study whose groups are attacks and whose rows are
defenses (configs/study/leaderboard_mnist5k.py): ``leaderboard.json`` / ``.md`` and a heat map
``leaderboard.png`` of victim clean test accuracy, clean training as the reference row.

Each experiment is one cell: its group names the attack (``clean`` for the reference row), its
label the defense, its one victim radius the column's PGD-AT (``at``) or standard training.
"""
from __future__ import annotations

import os

from sem_jax.files import atomic
from sem_jax.run.plots import heat_map

CLEAN = "clean"
NAME = "leaderboard"


def pivot(result: dict, order: list[dict]) -> dict:
  """{attacks, defenses, accuracy[attack][defense] (None: not run yet)} from a study result
  and its config's experiments (``order``: [{group, label}], every cell the config lists)."""
  attacks = list(dict.fromkeys(e["group"] for e in order))
  if CLEAN in attacks:
    attacks.remove(CLEAN)
    attacks.insert(0, CLEAN)
  defenses = list(dict.fromkeys(e["label"] for e in order))
  acc = {a: {d: None for d in defenses} for a in attacks}
  for r in result["rows"]:   # a clean row inside an attack's group is its fixed model
    if r["accuracy"] and (r["method"] != "clean" or r["group"] == CLEAN):
      acc[r["group"]][r["label"]] = next(iter(r["accuracy"].values()))
  return {"attacks": attacks, "defenses": defenses, "accuracy": acc}


def cells(board: dict, attack: str) -> list[str]:
  """The attack's row as the tables print it: % at one decimal per defense, '-' not run yet."""
  return ["-" if board["accuracy"][attack][d] is None else
          f"{100 * board['accuracy'][attack][d]:.1f}" for d in board["defenses"]]


def markdown(board: dict, title: str, complete: bool) -> str:
  cols = board["defenses"]
  out = [f"# {title}" + ("" if complete else " (partial: the study is still running)") + "\n",
         "Clean test accuracy (%) of a victim trained on the published set under each defense "
         "(lower = the attack survives the defense); the `clean` row trains on clean data."
         + (" '-': not run yet (the study has not reached the cell; its command continues it)."
            if any(v is None for r in board["accuracy"].values() for v in r.values()) else "")
         + "\n",
         "| attack | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  for a in board["attacks"]:
    out.append(f"| {a} | " + " | ".join(cells(board, a)) + " |")
  return "\n".join(out) + "\n"


def write(workdir: str, result: dict, order: list[dict], title: str) -> dict:
  """leaderboard.json, leaderboard.md and leaderboard.png in ``workdir``; returns the board."""
  board = pivot(result, order)
  complete = result.get("complete", True)
  atomic.write_json(os.path.join(workdir, f"{NAME}.json"),
                    {"title": title, "complete": complete, **board})
  atomic.write_text(os.path.join(workdir, f"{NAME}.md"), markdown(board, title, complete))
  values = [[None if board["accuracy"][a][d] is None else 100 * board["accuracy"][a][d]
             for d in board["defenses"]] for a in board["attacks"]]
  heat_map(os.path.join(workdir, f"{NAME}.png"), board["attacks"], board["defenses"], values,
           label="victim clean test accuracy (%)", title=title)
  return board
