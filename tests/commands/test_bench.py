"""run.py bench runs and its JSON line has the documented fields (no timing is asserted)."""
import json
import os

import pytest

from conftest import REPO
from sem_jax.cli import main

PIECES = {"augmentation", "surrogate_pgd", "surrogate_update", "outer_step", "final_pass_craft"}


@pytest.mark.parametrize("method,unroll", [("sem", "true"), ("rem", "false")])
def test_bench_prints_table_and_json(method, unroll, capsys, tmp_path):
  out_json = tmp_path / "bench.json"
  code = main(["bench", "--config", os.path.join(REPO, "configs/mnist5k/sem.py"),
               "--steps", "1", "--warmup", "0", "--json", str(out_json),
               f"--config.method={method}", "--config.batch_size=8", "--config.model_width=4",
               "--config.noise_steps=2", "--config.num_samples=2", "--config.adv_steps=2",
               f"--config.unroll_loops={unroll}"])
  assert code == 0
  lines = capsys.readouterr().out.strip().splitlines()
  result = json.loads(lines[-1])
  assert result == json.loads(out_json.read_text())
  assert {p["piece"] for p in result["pieces"]} == PIECES | {f"craft_{method}"}
  for p in result["pieces"]:
    for field in ("median_s", "images_per_s", "flops", "gflops_per_s", "compile_s"):
      assert field in p
    assert p["median_s"] > 0 and p["compile_s"] > 0
    assert p["temp_bytes"] >= 0 and p["argument_bytes"] > 0 and p["output_bytes"] > 0
  for field in ("device_kind", "device_count", "dtype", "peak_host_rss_bytes", "flops_source"):
    assert field in result
  assert result["flops_source"] == ("xla" if unroll == "true" else "scaled")
  pieces = {p["piece"]: p for p in result["pieces"]}
  if unroll == "true":  # exact XLA counts: the outer step holds crafting, PGD and the update
    assert pieces["outer_step"]["flops"] > pieces[f"craft_{method}"]["flops"] > 0
  assert "seconds_per_image" in pieces["final_pass_craft"]
  assert any(l.startswith("outer_step") for l in lines)


def test_bench_rejects_bad_steps(capsys):
  code = main(["bench", "--config", os.path.join(REPO, "configs/mnist5k/sem.py"), "--steps", "-1"])
  assert code == 2 and "--steps must be >= 0" in capsys.readouterr().err


def test_bench_compile_only_reports_memory_and_runs_nothing(capsys):
  """--steps 0: compile time, FLOPs and XLA's memory plan, no timed call (median NaN). The
  outer step's arguments hold the state and the batch: more than the uint8 batch alone."""
  import math
  code = main(["bench", "--config", os.path.join(REPO, "configs/mnist5k/sem.py"),
               "--steps", "0", "--config.batch_size=8", "--config.model_width=4",
               "--config.noise_steps=2", "--config.num_samples=2", "--config.adv_steps=2"])
  assert code == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  pieces = {p["piece"]: p for p in result["pieces"]}
  assert all(math.isnan(p["median_s"]) and p["reps"] == 0 for p in pieces.values())
  outer = pieces["outer_step"]
  assert outer["argument_bytes"] > 8 * 32 * 32 and outer["temp_bytes"] > 0
  assert outer["total_bytes"] <= outer["argument_bytes"] + outer["output_bytes"] + outer["temp_bytes"]
