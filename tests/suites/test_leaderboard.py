"""The attack x defense leaderboard: a tiny one runs end to end (every cell filled, the clean
reference row first, the heat map written), and the shipped config crosses every attack with
every defense."""
import json
import os

import pytest

from conftest import REPO, tiny_config, tiny_eval_config
from sem_jax.core.crafting.methods import METHODS
from sem_jax.run.configfile import load_config_file
from sem_jax.suites import leaderboard
from sem_jax.suites.study import Experiment, StudyConfig, run_study


def test_a_tiny_leaderboard_fills_every_cell(npz_path, tmp_path, one_device):
  ev = tiny_eval_config(npz_path, train_steps=2, eval_every=100)
  rnd = tiny_config(npz_path, method="random")
  rows = []
  for attack, gen in (("clean", None), ("random", rnd)):
    for d, change in (("none", {}), ("bdr", {"defenses": "bdr"})):
      name = "clean" if (attack, d) == ("clean", "none") else f"{attack}-{d}"
      rows.append(Experiment(name, attack, ev.replace(**change), (0.0,), generate=gen, label=d,
                             noise=attack if gen else ""))
  cfg = StudyConfig(experiments=tuple(rows), name="b", leaderboard=True, title="tiny board")
  run_study(cfg, str(tmp_path / "w"), log=lambda *_: None, devices=one_device)
  board = json.loads((tmp_path / "w" / "leaderboard.json").read_text())
  assert board["attacks"] == ["clean", "random"] and board["defenses"] == ["none", "bdr"]
  assert all(0 <= v <= 1 for a in board["accuracy"].values() for v in a.values())
  study = json.loads((tmp_path / "w" / "b.json").read_text())
  by_name = {r["name"]: r["accuracy"]["0"] for r in study["rows"]}
  assert board["accuracy"]["random"]["bdr"] == by_name["random-bdr"]
  assert board["accuracy"]["clean"]["none"] == by_name["clean"]
  md = (tmp_path / "w" / "leaderboard.md").read_text()
  table = [l for l in md.splitlines() if l.startswith("| ") and not l.startswith("| attack")]
  assert table[0].startswith("| clean |") and len(table) == 2
  assert all(" - " not in l for l in table)
  assert (tmp_path / "w" / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"


def test_a_cell_not_run_yet_is_marked():
  order = [{"group": "clean", "label": "none"}, {"group": "sem", "label": "none"}]
  result = {"rows": [{"group": "clean", "label": "none", "method": "clean",
                      "accuracy": {"0": 0.9}}]}
  board = leaderboard.pivot(result, order)
  assert board["accuracy"]["sem"]["none"] is None
  md = leaderboard.markdown(board, "t", False)
  assert "| sem | - |" in md and "'-': not run yet" in md
  board["accuracy"]["sem"]["none"] = 0.2      # every cell run: no legend for '-'
  assert "not run yet" not in leaderboard.markdown(board, "t", True)


@pytest.mark.parametrize("name", ["leaderboard_mnist5k", "leaderboard_digits32"])
def test_the_shipped_leaderboards_cross_every_attack_with_every_defense(name):
  cfg = load_config_file(os.path.join(REPO, "configs", "study", f"{name}.py"))
  cfg.validate()
  cells = {(e.group, e.label) for e in cfg.experiments}
  attacks = {e.group for e in cfg.experiments}
  defenses = {e.label for e in cfg.experiments}
  assert attacks == {"clean"} | set(METHODS)     # every method we have
  assert {"none", "at", "bdr", "standardize", "iss_gray", "iss_jpeg", "ueraser", "dvae"} <= defenses
  assert cells == {(a, d) for a in attacks for d in defenses}
  # the board reads clean first, then SEM; its columns start with no defense
  board = leaderboard.pivot({"rows": []}, [e.to_dict() for e in cfg.experiments])
  assert board["attacks"][:2] == ["clean", "sem"] and board["defenses"][0] == "none"
  data = {(e.evaluation.dataset, e.evaluation.data_dir) for e in cfg.experiments}
  data |= {(e.generate.dataset, e.generate.data_dir) for e in cfg.experiments if e.generate}
  if name.endswith("digits32"):
    assert {(d, os.path.basename(p)) for d, p in data} == {("npz", "digits32.npz")}
  else:
    assert data == {("mnist5k", "")}
