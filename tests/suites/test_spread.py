"""study --seeds: the study at several seeds and every cell's mean and range."""
import json
import os

import pytest

from conftest import REPO, write_any_config_file
from sem_jax.cli import main
from sem_jax.errors import SemJaxError
from sem_jax.suites.study import Experiment, StudyConfig
from sem_jax.suites.study.spread import markdown, parse_seeds, spread, write_spread


@pytest.mark.parametrize("text,want", [("0,1,2", (0, 1, 2)), ("0-2", (0, 1, 2)),
                                       ("2, 0,1,1", (0, 1, 2)), ("3,0-1", (0, 1, 3))])
def test_seeds_parse(text, want):
  assert parse_seeds(text) == want


@pytest.mark.parametrize("text,pattern", [("1", "at least two seeds"), ("a", "0,1,2 or 0-2"),
                                          ("3-1", "0,1,2 or 0-2"), ("-1,2", "0,1,2 or 0-2")])
def test_bad_seeds_are_refused(text, pattern):
  with pytest.raises(SemJaxError, match=pattern):
    parse_seeds(text)


def _table(seed: int, rows: dict, complete=True, machine="CPU A") -> dict:
  sfx = f"-seed{seed}" if seed else ""
  return {"title": "t", "complete": complete, "machines": [machine], "rows": [
      {"group": g, "name": n + sfx, "label": n, "method": "sem", "accuracy": acc}
      for (g, n), acc in rows.items()]}


def test_each_cell_is_the_mean_and_range_of_its_seeds(tmp_path):
  """Rows match across seeds by group and name less the -seedN suffix; a row only one seed
  has (the config seeds it itself) stays out; a radius some seed lacks stays out."""
  from conftest import tiny_eval_config
  e = tiny_eval_config("x.npz")
  cfg = StudyConfig(name="s", title="t", experiments=(
      Experiment("clean", "g", e, (0.0, 4.0)), Experiment("sem", "g", e, (0.0, 4.0)),
      Experiment("sem", "h", e, (0.0,)), Experiment("own", "g", e.replace(seed=5), (0.0,))))
  tables = {
      0: _table(0, {("g", "clean"): {"0": 0.9, "4": 0.8}, ("g", "sem"): {"0": 0.2, "4": 0.5},
                    ("h", "sem"): {"0": 0.4}, ("g", "own"): {"0": 0.1}}),
      1: _table(1, {("g", "clean"): {"0": 0.95, "4": 0.85}, ("g", "sem"): {"0": 0.4},
                    ("h", "sem"): {"0": 0.5}}, machine="CPU B"),
      2: _table(2, {("g", "clean"): {"0": 1.0, "4": 0.9}, ("g", "sem"): {"0": 0.3, "4": 0.6},
                    ("h", "sem"): {"0": 0.6}}, complete=False),
  }
  for s, t in tables.items():
    with open(tmp_path / (f"s-seed{s}.json" if s else "s.json"), "w") as f:
      json.dump(t, f)
  res = spread(cfg, str(tmp_path), (0, 1, 2))
  cells = {(r["group"], r["name"]): r["accuracy"] for r in res["rows"]}
  assert set(cells) == {("g", "clean"), ("g", "sem"), ("h", "sem")}
  assert cells[("g", "clean")]["0"]["mean"] == pytest.approx(0.95)
  assert (cells[("g", "clean")]["4"]["min"], cells[("g", "clean")]["4"]["max"]) == (0.8, 0.9)
  assert cells[("g", "sem")]["0"]["seeds"] == {"0": 0.2, "1": 0.4, "2": 0.3}
  assert set(cells[("g", "sem")]) == {"0"}                     # seed 1 has no ρa 4 victim
  assert res["machines"] == ["CPU A", "CPU B"] and not res["complete"]
  md = markdown(res)
  assert "| clean | 95.0 (90.0-100.0) | 85.0 (80.0-90.0) |" in md
  assert "| sem | 30.0 (20.0-40.0) | - |" in md and "## h" in md and "(partial)" in md
  assert "Computed on: CPU A; CPU B." in md
  with pytest.raises(SemJaxError, match="seed 3 of study 's' has no table yet"):
    spread(cfg, str(tmp_path), (0, 3))
  write_spread(cfg, str(tmp_path), (0, 1, 2))
  assert json.load(open(tmp_path / "s-spread.json"))["rows"] == res["rows"]
  assert open(tmp_path / "s-spread.md").read() == md


def test_study_seeds_runs_every_replicate_and_writes_the_spread(tmp_path, capsys):
  """The command end to end: two seeds of a clean study and a random-noise one, their own
  tables, the spread beside them; --seed with --seeds is refused."""
  npz = tmp_path / "d.npz"
  import numpy as np
  from conftest import synthetic_arrays
  np.savez(npz, **synthetic_arrays())
  cfg_file = write_any_config_file(
      tmp_path / "s.py",
      "StudyConfig(experiments=(Experiment('clean', 'g', ev, (0.0,)), "
      "Experiment('random', 'g', ev, (0.0,), generate=tiny_config(%r, method='random'))), "
      "name='two', title='two rows')" % str(npz),
      "import sys\nsys.path.insert(0, %r)\nfrom conftest import tiny_config, tiny_eval_config\n"
      "from sem_jax.suites.study import Experiment, StudyConfig\n"
      "ev = tiny_eval_config(%r, train_steps=2, eval_every=2)\n"
      % (os.path.join(REPO, "tests"), str(npz)))
  wd = str(tmp_path / "wd")
  assert main(["study", "--config", cfg_file, "--workdir", wd, "--seeds", "0,1"]) == 0
  assert "wrote " + wd + "/two-spread.json" in capsys.readouterr().out
  for f in ("two.json", "two-seed1.json", "two-spread.json", "two-spread.md"):
    assert os.path.exists(os.path.join(wd, f)), f
  seed0 = json.load(open(os.path.join(wd, "two.json")))["rows"]
  seed1 = json.load(open(os.path.join(wd, "two-seed1.json")))["rows"]
  res = json.load(open(os.path.join(wd, "two-spread.json")))
  assert res["complete"] and res["seeds"] == [0, 1] and len(res["machines"]) == 1
  for a, b, r in zip(seed0, seed1, res["rows"]):
    got = r["accuracy"]["0"]
    assert got["seeds"] == {"0": a["accuracy"]["0"], "1": b["accuracy"]["0"]}
    assert got["min"] == min(got["seeds"].values()) and got["max"] == max(got["seeds"].values())
  assert main(["study", "--config", cfg_file, "--workdir", wd, "--seeds", "0,1",
               "--seed", "1"]) == 2
  assert "not both" in capsys.readouterr().err
