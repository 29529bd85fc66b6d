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
  code = main(["bench", "--config", os.path.join(REPO, "configs", "mnist5k_sem.py"),
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
  for field in ("device_kind", "device_count", "dtype", "peak_host_rss_bytes", "flops_source"):
    assert field in result
  assert result["flops_source"] == ("xla" if unroll == "true" else "scaled")
  pieces = {p["piece"]: p for p in result["pieces"]}
  if unroll == "true":  # exact XLA counts: the outer step holds crafting, PGD and the update
    assert pieces["outer_step"]["flops"] > pieces[f"craft_{method}"]["flops"] > 0
  assert "seconds_per_image" in pieces["final_pass_craft"]
  assert any(l.startswith("outer_step") for l in lines)


def test_bench_rejects_bad_steps(capsys):
  code = main(["bench", "--config", os.path.join(REPO, "configs", "mnist5k_sem.py"), "--steps", "0"])
  assert code == 2 and "--steps must be >= 1" in capsys.readouterr().err
