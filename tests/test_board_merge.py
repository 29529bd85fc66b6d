"""tools/board_merge.py: the leaderboard page's board keeps every recorded cell, adds the cells a
later workdir finished (whatever study command finished them), marks each cell's source, and
leaves the rest '-'."""
import json
import os

from conftest import load_tool


def test_recorded_cells_stay_added_ones_fill_the_rest(tmp_path):
  tool = load_tool("board_merge")
  recorded = {"accuracy": {"clean": {"none": 0.95, "at": 0.957}, "sem": {"none": 0.284}},
              "machine": "2-core Intel Xeon (2.8 GHz)"}
  amd = {"cpu": "AMD EPYC", "cpu_family": 25, "cpu_model": 17}
  cfg = tool.config.get_config()
  cells = {(e.group, e.label): e for e in cfg.experiments}
  for (group, label), acc in {("clean", "at"): 0.5, ("cuda", "none"): 0.267,
                              ("cuda", "coin"): 0.288}.items():
    e = cells[(group, label)]
    out = tool.victim_dir(str(tmp_path), e, e.adv_radii[0])
    os.makedirs(out)
    with open(os.path.join(out, "results.json"), "w") as f:
      json.dump({"final": {"test_accuracy": acc}, "machine": amd}, f)
  board = tool.merged(recorded, tool.workdir_rows(str(tmp_path)))
  assert board["accuracy"]["clean"]["at"] == 0.957            # the record wins
  assert board["source"]["clean"]["at"] == "recorded"
  assert board["accuracy"]["cuda"]["none"] == 0.267 and board["source"]["cuda"]["none"] == "added"
  assert board["accuracy"]["cuda"]["coin"] == 0.288
  assert board["accuracy"]["gue"]["none"] is None and board["source"]["gue"]["none"] is None
  assert not board["complete"]
  assert board["machines"] == {"recorded": "2-core Intel Xeon (2.8 GHz)",
                               "added": ["AMD EPYC (family 25 model 17)"]}
  assert board["attacks"][0] == "clean" and {"coin", "eclipse", "at"} <= set(board["defenses"])


def test_merging_a_merged_board_keeps_each_cells_first_source(tmp_path):
  tool = load_tool("board_merge")
  amd = {"cpu": "AMD EPYC", "cpu_family": 25, "cpu_model": 17}
  e = next(e for e in tool.config.get_config().experiments if (e.group, e.label) == ("cuda", "none"))
  out = tool.victim_dir(str(tmp_path), e, e.adv_radii[0])
  os.makedirs(out)
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump({"final": {"test_accuracy": 0.267}, "machine": amd}, f)
  first = tool.merged({"accuracy": {"clean": {"none": 0.95}}, "machine": "Intel"},
                      tool.workdir_rows(str(tmp_path)))
  again = tool.merged(first, [])                     # the page's JSON as the new record
  assert again["source"]["cuda"]["none"] == "added" and again["accuracy"]["cuda"]["none"] == 0.267
  assert again["source"]["clean"]["none"] == "recorded"
  assert again["machines"] == {"recorded": "Intel", "added": ["AMD EPYC (family 25 model 17)"]}
