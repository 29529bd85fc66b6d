#!/usr/bin/env bash
# GPU throughput, one prepared script for a lent GPU (about 8 minutes on one H100/H200;
# docs/performance.md, "On one NVIDIA H200"):
# 1. `run.py bench` of configs/cifar10/sem.py (ResNet-18, batch 128) in float32 at XLA's default
#    matmul precision, in float32 at JAX_DEFAULT_MATMUL_PRECISION=highest (a slower step means
#    the default used TF32 tensor cores), and in bfloat16; FLOPs counted on the lowered module.
# 2. 1, 2 and 4 concurrent float32 benches on the one GPU (no preallocation): summed images/s,
#    i.e. when `study --workers` pays.
# 3. MNIST-5k SEM in float32 and bfloat16 (tools/bf16_mnist5k.sh: noise agreement, victims at
#    ρa 0 and 4) and a victim (ResNet-18 on MNIST-5k, 200 steps) in both dtypes.
# Results in $OUT (default gpu_out): bench_*.json, *.log, summary.json.
#   bash tools/gpu_throughput.sh     # env: OUT, WORK, PY, EXTRA (extra bench overrides), SKIP_MNIST=1
set -u
OUT=${OUT:-gpu_out}
WORK=${WORK:-runs/gpu-throughput}
PY=${PY:-python3}
EXTRA=${EXTRA:-}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
$PY -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
B="run.py bench --config configs/cifar10/sem.py --steps 5 $EXTRA"
timeout 150 $PY $B --json "$OUT/bench_f32.json" > "$OUT/bench_f32.log" 2>&1 || echo "bench f32 failed"
JAX_DEFAULT_MATMUL_PRECISION=highest timeout 150 $PY $B --json "$OUT/bench_f32_highest.json" \
  > "$OUT/bench_f32_highest.log" 2>&1 || echo "bench f32 highest failed"
timeout 150 $PY $B --config.dtype=bfloat16 --json "$OUT/bench_bf16.json" > "$OUT/bench_bf16.log" 2>&1 \
  || echo "bench bf16 failed"
for n in 2 4; do
  for i in $(seq 1 $n); do
    XLA_PYTHON_CLIENT_PREALLOCATE=false timeout 200 $PY $B --json "$OUT/bench_x${n}_$i.json" \
      > "$OUT/bench_x${n}_$i.log" 2>&1 &
  done
  wait
done
if [ -z "${SKIP_MNIST:-}" ]; then
  timeout 240 bash tools/bf16_mnist5k.sh "$WORK/bf16" > "$OUT/bf16_mnist5k.log" 2>&1 || echo "bf16 mnist5k failed"
  for dt in float32 bfloat16; do
    timeout 90 $PY run.py evaluate --config configs/eval/mnist5k.py --noise none --config.model=resnet18 \
      --config.train_steps=200 --config.eval_every=200 --config.dtype=$dt \
      --workdir "$WORK/victim-$dt" > "$OUT/victim_$dt.log" 2>&1 || echo "victim $dt failed"
  done
fi
OUT=$OUT WORK=$WORK $PY - <<'PY'
import json, os
O, W = os.environ["OUT"], os.environ["WORK"]
load = lambda p: json.load(open(p)) if os.path.exists(p) else None
res = {}
for name in ("f32", "f32_highest", "bf16"):
  b = load(f"{O}/bench_{name}.json")
  if b:
    res[name] = {p["piece"]: {k: p.get(k) for k in ("median_s", "images_per_s", "tflops_per_s",
                                                     "peak_fraction", "peak_bytes_after_compile",
                                                     "peak_bytes_after_run")} for p in b["pieces"]}
    res[name]["cache"] = b.get("compilation_cache")
for n in (2, 4):
  runs = [load(f"{O}/bench_x{n}_{i}.json") for i in range(1, n + 1)]
  outer = [next(p for p in r["pieces"] if p["piece"] == "outer_step") for r in runs if r]
  res[f"concurrent_{n}"] = {"runs": len(outer), "summed_images_per_s": sum(p["images_per_s"] for p in outer)}
if "f32" in res:
  res["concurrent_1"] = {"runs": 1, "summed_images_per_s": res["f32"]["outer_step"]["images_per_s"]}
  step = res["f32"]["outer_step"]["median_s"]
  fin = res["f32"]["final_pass_craft"]["median_s"] / 128
  res["projected_cifar10_f32_min"] = (5000 * step + 50000 * fin) / 60
if "bf16" in res:
  step = res["bf16"]["outer_step"]["median_s"]
  res["projected_cifar10_bf16_min"] = (5000 * step + 50000 * res["bf16"]["final_pass_craft"]["median_s"] / 128) / 60
res["bf16_mnist5k"] = load(f"{W}/bf16/summary.json")
for dt in ("float32", "bfloat16"):
  r = load(f"{W}/victim-{dt}/results.json")
  if r:
    res[f"victim_resnet18_{dt}"] = {"wall_time_s": r["wall_time_s"], "test_accuracy": r["final"]["test_accuracy"]}
print(json.dumps(res, indent=1))
json.dump(res, open(f"{O}/summary.json", "w"), indent=1)
PY
