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
    for field in ("median_s", "images_per_s", "flops", "tflops_per_s", "compile_s",
                  "xla_compiled_flops", "peak_bytes_after_compile", "peak_bytes_after_run",
                  "peak_fraction"):
      assert field in p
    assert p["median_s"] > 0 and p["compile_s"] > 0
    assert p["temp_bytes"] >= 0 and p["argument_bytes"] > 0 and p["output_bytes"] > 0
  for field in ("device_kind", "device_count", "dtype", "peak_host_rss_bytes", "flops_source"):
    assert field in result
  assert result["flops_source"] == "lowered x passes" and result["pass_flops"] > 0
  cache = result["compilation_cache"]   # the suite's cache (conftest), warm once anything ran
  assert cache["dir"] and cache["warm"] == bool(cache["entries_at_start"])
  pieces = {p["piece"]: p for p in result["pieces"]}
  # K·J passes per image (REM: x (1 + its 2 PGD steps)); PGD 2; the outer step their sum + update
  passes = 2 * 2 * (3 if method == "rem" else 1)
  assert result["craft_passes_per_image"] == passes
  craft = pieces[f"craft_{method}"]["flops"]
  assert craft == passes * result["pass_flops"] == pieces["final_pass_craft"]["flops"]
  assert pieces["surrogate_pgd"]["flops"] == 2 * result["pass_flops"]
  assert pieces["outer_step"]["flops"] == (craft + pieces["surrogate_pgd"]["flops"]
                                           + pieces["surrogate_update"]["flops"])
  if unroll == "true":  # XLA:CPU's own count of the unrolled step: the passes are most of it
    xla = pieces[f"craft_{method}"]["xla_compiled_flops"]   # (measured 90 %: this width-4 model
    assert 0.85 * xla < craft <= 1.01 * xla, (craft, xla)   # leaves room for augmentation)
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


def test_one_resnet18_pass_counts_as_xla_cpu_compiles_it():
  """The bench's unit: one forward + input-gradient pass of ResNet-18 at CIFAR size, counted on
  the lowered module, within 2 % of XLA:CPU's count of the compiled pass (the count a GPU's
  cuDNN custom calls would hide)."""
  import jax
  import jax.numpy as jnp
  from sem_jax import core
  from sem_jax.commands.bench import pass_flops
  from sem_jax.core.attacks import ce
  model = core.create_model("resnet18", 10, 0)
  state = core.init_state(model, core.paper_sgd(learning_rate=0.1), jax.random.key(0), (32, 32, 3))
  counted = pass_flops(model, state, (32, 32, 3), 4)
  grad = jax.jit(lambda s, v, t: jax.grad(lambda u: ce(core.logits_fn(model, s)(u), t).sum())(v))
  cost = grad.lower(state, jnp.zeros((4, 32, 32, 3)), jnp.zeros(4, jnp.int32)).compile()
  cost = cost.cost_analysis()
  xla = (cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"]
  assert abs(counted - xla) <= 0.02 * xla, (counted, xla)
  assert 1.8e9 < counted / 4 < 2.1e9      # ~1.94 GFLOP per 32x32 image, forward + input grad


def test_datasheet_peaks():
  from sem_jax.commands.bench import peak_tflops
  assert peak_tflops("NVIDIA H200", "bfloat16") == 989.4
  assert peak_tflops("NVIDIA H100 80GB HBM3", "float32") == 494.7          # TF32 tensor cores
  assert peak_tflops("NVIDIA H100 80GB HBM3", "float32", "highest") == 66.9
  assert peak_tflops("cpu", "float32") is None and peak_tflops("TPU v4", "float32") is None
