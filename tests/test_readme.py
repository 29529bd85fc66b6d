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
