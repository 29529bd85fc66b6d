"""summary.json of tools/gpu_side_by_side.sh: our `bench` and the release's harness
(tools/release_step.py), each in float32 and bfloat16 and for REM, side by side on one device,
with the ratios and the projected full CIFAR-10 runs. A piece that did not finish is absent and
named in ``missing``.

  python tools/side_by_side_summary.py OUT_DIR [WORK_DIR]
"""
from __future__ import annotations

import json
import os
import sys

CIFAR10_STEPS = 5000      # the paper's surrogate steps (configs/cifar10/sem.py)
CIFAR10_IMAGES = 50000    # the final pass crafts every training image once
OURS = {"sem_float32": "bench_sem_f32.json", "sem_bfloat16": "bench_sem_bf16.json",
        "rem_float32": "bench_rem_f32.json"}
RELEASE = {"sem_float32": "release_sem_f32.json", "sem_bfloat16": "release_sem_bf16.json",
           "rem_float32": "release_rem_f32.json"}


def _load(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def ours(b: dict) -> dict:
  """The figures of one `run.py bench --json` result."""
  piece = {p["piece"]: p for p in b["pieces"]}
  step, final = piece["outer_step"], piece["final_pass_craft"]
  per_image = final["median_s"] / final["images"]
  return {"outer_step_s": step["median_s"], "images_per_s": step["images_per_s"],
          "tflops_per_s": step.get("tflops_per_s"), "peak_fraction": step.get("peak_fraction"),
          "peak_device_bytes": b.get("peak_device_bytes"), "final_pass_s_per_image": per_image,
          "device": b.get("device_kind"), "dtype": b.get("dtype"),
          "jax": b.get("jax_version"), "batch": step["images"],
          "projected_cifar10_min": (CIFAR10_STEPS * step["median_s"]
                                    + CIFAR10_IMAGES * per_image) / 60}


def release(r: dict) -> dict:
  """The figures of one tools/release_step.py line (its final pass repeats ``perturb`` over
  every batch of the training set)."""
  batch = r["settings"]["batch"]
  return {"outer_step_s": r["median_s"], "images_per_s": r["images_per_s"],
          "perturb_s": r["perturb_median_s"], "peak_device_bytes": r.get("peak_bytes"),
          "device": r.get("device"), "precision": r["precision"], "torch": r.get("torch"),
          "cuda": r.get("cuda"), "tf32_matmul": r.get("tf32_matmul"),
          "tf32_conv": r.get("tf32_conv"), "batch": batch,
          "projected_cifar10_min": (CIFAR10_STEPS * r["median_s"]
                                    + CIFAR10_IMAGES / batch * r["perturb_median_s"]) / 60}


def summarise(out: str, work: str | None = None) -> dict:
  res = {"ours": {}, "release": {}, "ratio_release_over_ours": {}, "missing": []}
  for side, files, figures in (("ours", OURS, ours), ("release", RELEASE, release)):
    for key, name in files.items():
      raw = _load(os.path.join(out, name))
      if raw:
        res[side][key] = figures(raw)
      else:
        res["missing"].append(f"{side} {key}")
  for key in OURS:
    a, b = res["ours"].get(key), res["release"].get(key)
    if a and b:
      res["ratio_release_over_ours"][key] = {
          "outer_step": b["outer_step_s"] / a["outer_step_s"],
          "projected_cifar10": b["projected_cifar10_min"] / a["projected_cifar10_min"]}
  for side in ("ours", "release"):
    s, r = res[side].get("sem_float32"), res[side].get("rem_float32")
    if s and r:
      res[f"rem_over_sem_{side}"] = r["outer_step_s"] / s["outer_step_s"]
  devices = {v["device"] for side in ("ours", "release") for v in res[side].values()}
  res["devices"] = sorted(d for d in devices if d)
  if work:
    res["bf16_mnist5k"] = _load(os.path.join(work, "bf16", "summary.json"))
  res["stages"] = _stages(os.path.join(out, "stages.tsv"))
  return res


def _stages(path: str) -> list:
  """The script's record of each stage: name, status (ok, failed rc, skipped), seconds."""
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      name, status, secs = (line.rstrip("\n").split("\t") + ["", ""])[:3]
      rows.append({"stage": name, "status": status, "s": float(secs) if secs else None})
  return rows


def main(argv=None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  if not argv:
    sys.exit("usage: side_by_side_summary.py OUT_DIR [WORK_DIR]")
  res = summarise(argv[0], argv[1] if len(argv) > 1 else None)
  with open(os.path.join(argv[0], "summary.json"), "w") as f:
    json.dump(res, f, indent=1)
  print(json.dumps(res, indent=1))


if __name__ == "__main__":
  main()
