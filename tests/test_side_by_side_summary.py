"""tools/side_by_side_summary.py: the ratios and projected CIFAR-10 runs it writes into the GPU
side-by-side summary.json, from bench and harness outputs of known values."""
import json

import pytest

from conftest import load_tool


def _bench(step_s, final_s, dtype="float32"):
  return {"device_kind": "NVIDIA H100", "dtype": dtype, "jax_version": "0.10.2",
          "peak_device_bytes": 2 ** 30, "pieces": [
              {"piece": "outer_step", "median_s": step_s, "images": 128,
               "images_per_s": 128 / step_s, "tflops_per_s": 100.0, "peak_fraction": 0.2},
              {"piece": "final_pass_craft", "median_s": final_s, "images": 128,
               "images_per_s": 128 / final_s}]}


def _release(step_s, perturb_s, precision="float32"):
  return {"side": "release", "median_s": step_s, "images_per_s": 128 / step_s,
          "perturb_median_s": perturb_s, "precision": precision, "peak_bytes": 3 * 2 ** 30,
          "device": "NVIDIA H100", "torch": "2.9", "cuda": "12.8", "tf32_matmul": False,
          "tf32_conv": True, "settings": {"batch": 128}}


def test_ratios_and_projections_from_known_step_times(tmp_path):
  tool = load_tool("side_by_side_summary")
  files = {"bench_sem_f32.json": _bench(0.1, 0.08), "bench_rem_f32.json": _bench(0.5, 0.4),
           "release_sem_f32.json": _release(0.6, 0.5),
           "release_rem_f32.json": _release(3.0, 2.8),
           "release_sem_bf16.json": _release(0.4, 0.3, "bfloat16")}
  for name, body in files.items():
    (tmp_path / name).write_text(json.dumps(body))
  (tmp_path / "stages.tsv").write_text("bench_sem_f32\tok\t61\nbench_sem_bf16\tfailed rc 124\t150\n"
                                       "bf16_mnist5k\tskipped (time)\t\n")
  tool.main([str(tmp_path)])
  res = json.loads((tmp_path / "summary.json").read_text())
  sem = res["ours"]["sem_float32"]
  assert sem["projected_cifar10_min"] == pytest.approx((5000 * 0.1 + 50000 * 0.08 / 128) / 60)
  rel = res["release"]["sem_float32"]
  assert rel["projected_cifar10_min"] == pytest.approx((5000 * 0.6 + 50000 / 128 * 0.5) / 60)
  assert res["ratio_release_over_ours"]["sem_float32"]["outer_step"] == pytest.approx(6.0)
  assert res["ratio_release_over_ours"]["rem_float32"]["outer_step"] == pytest.approx(6.0)
  assert "sem_bfloat16" not in res["ratio_release_over_ours"]     # ours did not finish
  assert res["missing"] == ["ours sem_bfloat16"]
  assert res["rem_over_sem_ours"] == pytest.approx(5.0)
  assert res["rem_over_sem_release"] == pytest.approx(5.0)
  assert res["devices"] == ["NVIDIA H100"]
  assert res["stages"] == [{"stage": "bench_sem_f32", "status": "ok", "s": 61.0},
                           {"stage": "bench_sem_bf16", "status": "failed rc 124", "s": 150.0},
                           {"stage": "bf16_mnist5k", "status": "skipped (time)", "s": None}]
