"""The README's and docs/library.md's first library examples compute SEM noise (every block of
every page runs in tests/test_doc_examples.py)."""
import os
import re

import numpy as np
import pytest

from conftest import REPO


def _python_blocks(path):
  return re.findall(r"```python\n(.*?)```", open(path).read(), flags=re.S)


@pytest.mark.parametrize("page", ["README.md", "docs/library.md"])
def test_the_library_example_runs_as_written(page):
  block = _python_blocks(os.path.join(REPO, page))[0]
  scope = {}
  exec(compile(block, page, "exec"), scope)
  noise = np.asarray(scope["noise"])
  x = scope["x"]
  assert noise.dtype == np.int8 and noise.shape == x.shape
  assert np.abs(noise.astype(int)).max() <= 8 and (noise != 0).any()
  assert scope["crafter"].method == "sem" and scope["crafter"].int8_bound == 8
  if "published" in scope:
    assert np.array_equal(scope["published"], np.clip(x.astype(int) + noise, 0, 255))


def test_the_readme_full_size_figures_are_the_measured_ones():
  """The README's full-size protection sentence quotes docs/fullsize_protection.json."""
  import json
  rows = {r["data"]: r for r in json.load(open(os.path.join(REPO, "docs/fullsize_protection.json")))["rows"]}
  pct = lambda name: f"{100 * rows[name]['clean_test_acc']:.1f} %"
  text = " ".join(open(os.path.join(REPO, "README.md")).read().split())
  assert (f"(clean {pct('clean')}, chance 10 %), victims reached {pct('thumbnails (png, 32 px)')} "
          f"on the thumbnails, {pct('full size, PNG')} on the full-size PNGs and "
          f"{pct('full size, JPEG sources as JPEG q90')} with JPEG sources at quality 90") in text


def test_the_readme_test_command_is_what_ci_runs():
  ci = open(os.path.join(REPO, ".ci", "run")).read().strip().splitlines()[-1]
  assert ci.startswith("pip install -e") and f"```\n{ci}\n```" in open(os.path.join(REPO, "README.md")).read()


def test_the_attacks_table_shows_the_attacks_studys_numbers():
  """README's rows for the field's attacks equal docs/attacks_mnist5k.json (the study's own
  results), each cell at one decimal of a percent, and its generation time in seconds."""
  import json
  rows = json.load(open(os.path.join(REPO, "docs", "attacks_mnist5k.json")))["rows"]
  study = {r["name"]: r for r in rows}
  readme = open(os.path.join(REPO, "README.md")).read()
  checked = 0
  for name in ("lsp", "ops", "ar", "ntga", "dc", "hypo"):
    (line,) = [l for l in readme.splitlines() if l.startswith(f"| {name} |")]
    cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
    row = study[name]
    assert cells[2:5] == [f"{100 * row['accuracy'][k]:.1f}" for k in ("0", "2", "4")], name
    assert cells[5] == f"{row['generation_s']:.0f} s", name
    checked += 1
  assert checked == 6


def test_the_leaderboard_table_and_page_show_the_boards_numbers():
  """README's leaderboard (rows ``| `attack` | ...``) and docs/leaderboard_mnist5k.md's table
  equal docs/leaderboard_mnist5k.json, the board the study wrote: one decimal of a percent,
  '-' for a cell not run."""
  import json
  from sem_jax.suites import leaderboard
  board = json.load(open(os.path.join(REPO, "docs", "leaderboard_mnist5k.json")))
  page = open(os.path.join(REPO, "docs", "leaderboard_mnist5k.md")).read()
  assert page.startswith(leaderboard.markdown(board, board["title"], board["complete"]))
  readme = open(os.path.join(REPO, "README.md")).read().splitlines()
  (head,) = [l for l in readme if l.startswith("| attack | ") and "bdr" in l]
  assert [c.strip() for c in head.strip("|").split("|")][1:] == board["defenses"]
  for attack in board["attacks"]:
    (line,) = [l for l in readme if l.startswith(f"| `{attack}` |")]
    cells = [c.strip().strip("*") for c in line.strip("|").split("|")][1:]
    assert cells == leaderboard.cells(board, attack), attack
  # the prose around the table: every cell ran, and only CUDA's victim stays far below clean
  # training under PGD-AT at ρa 4 ("Only CUDA resists PGD-AT at ρa 4 here")
  text = "\n".join(readme)
  n = len(board["attacks"]) * len(board["defenses"])
  assert f"All {n} cells ran" in text and board["complete"]
  assert "Only CUDA resists PGD-AT at ρa 4" in text
  clean_at = board["accuracy"]["clean"]["at"]
  assert [a for a in board["attacks"] if board["accuracy"][a]["at"] < clean_at - 0.05] == ["cuda"]


SPREAD = os.path.join(REPO, "docs", "spread_mnist5k.json")
CLAIM_PAGES = ("README.md", "docs/protection.md", "docs/attacks_mnist5k.md",
               "docs/leaderboard_mnist5k.md", "docs/artifacts.md")


def _spread_cells() -> dict:
  """'mean (min-max)' in % -> (group, experiment, ρa) for every cell of the headline spread."""
  import json
  res = json.load(open(SPREAD))
  pct = lambda v: f"{100 * v:.1f}"
  return {f"{pct(c['mean'])} ({pct(c['min'])}-{pct(c['max'])})": (r["group"], r["name"], k)
          for r in res["rows"] for k, c in r["accuracy"].items()}


def test_every_quoted_spread_is_a_cell_of_the_spread_study():
  """A 'mean (min-max)' figure anywhere in the README or the protection pages is a cell of
  docs/spread_mnist5k.json (the headline cells at seeds 0, 1, 2), and the README quotes the
  headline ones: SEM and clean under standard training and PGD-AT, and the ρu 16 cell."""
  import json
  cells = _spread_cells()
  quoted = {}
  for page in CLAIM_PAGES:
    text = " ".join(open(os.path.join(REPO, page), encoding="utf-8").read().split())
    for m in re.finditer(r"(\d+\.\d) \((\d+\.\d)-(\d+\.\d)\)", text):
      quoted.setdefault(page, []).append(m.group(0))
  wrong = [(p, q) for p, qs in quoted.items() for q in qs if q not in cells]
  assert not wrong, wrong
  readme = {cells[q] for q in quoted.get("README.md", [])}
  res = json.load(open(SPREAD))
  must = {(r["group"], r["name"], k) for r in res["rows"] for k in r["accuracy"]
          if r["name"] in ("sem", "mnist-sem-e16-a4-proj") or (r["name"] == "clean" and k == "0")}
  assert must <= readme, sorted(must - readme)
  assert res["complete"] and res["seeds"] == [0, 1, 2] and res["machines"]
  machine_line = res["machines"][0]
  assert machine_line.split(" (")[0] in open(os.path.join(REPO, "README.md")).read()


def test_protection_prose_numbers_come_from_the_studies():
  """Every one-decimal percentage in the prose of the README's protection section is a value
  of a study's JSON under docs/ (the attacks study, the leaderboard, the headline spread, the
  CPU study's recorded table): a sentence cannot quote a number no run produced."""
  import glob
  import json
  values = set()

  def walk(o):
    if isinstance(o, dict):
      for v in o.values():
        walk(v)
    elif isinstance(o, list):
      for v in o:
        walk(v)
    elif isinstance(o, float) and 0 <= o <= 1:
      values.add(f"{100 * o:.1f}")

  for path in ("attacks_mnist5k.json", "leaderboard_mnist5k.json", "spread_mnist5k.json"):
    walk(json.load(open(os.path.join(REPO, "docs", path))))
  # the CPU study's run on another machine, as its page records it (percent, not fractions)
  for table in json.load(open(os.path.join(REPO, "docs", "study", "cpu.tables.json"))):
    values.update(f"{c:.1f}" for row in table["rows"] for c in row if isinstance(c, float))
  readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
  section = readme[readme.index("## Does it protect?"):readme.index("## More")]
  prose = "\n".join(l for l in section.splitlines() if not l.startswith("|"))
  numbers = re.findall(r"(?<![\w.])(\d+\.\d)(?!\d)(?!\s*(?:s\b|min|hours|GiB|x\b|points))", prose)
  assert len(numbers) >= 40
  assert [n for n in numbers if n not in values] == []
