#!/bin/bash
# bfloat16 vs float32 SEM noise on MNIST-5k: the efficacy benchmark's SEM settings.
# usage (from the repository root): bash tools/bf16_mnist5k.sh [WORKDIR]
P="python run.py"
G="generate --config configs/mnist5k/sem.py --config.train_steps=200 --config.lr_decay_every=80"
E="evaluate --config configs/eval/mnist5k.py --config.train_steps=800 --config.lr_decay_every=320 --config.adv_steps=5 --config.eval_every=100 --config.log_every=100 --config.checkpoint_every=400"
W=${1:-runs/bf16}
for dt in float32 bfloat16; do
  /usr/bin/time -f "$dt generate wall %e s" $P $G --config.dtype=$dt --workdir $W/$dt
done
for dt in float32 bfloat16; do
  for ra in 0 4; do
    $P $E --config.adv_radius=$ra --noise $W/$dt --workdir $W/ev-$dt-ra$ra
  done
done
W=$W python - <<'PY'
import numpy as np, json, os
W = os.environ['W']
a = np.load(f"{W}/float32/noise.npy").astype(int)
b = np.load(f"{W}/bfloat16/noise.npy").astype(int)
out = {"identical": float((a == b).mean()), "same_sign": float((np.sign(a) == np.sign(b)).mean()),
       "mean_abs_diff": float(np.abs(a - b).mean()), "corr": float(np.corrcoef(a.ravel(), b.ravel())[0, 1])}
for dt in ("float32", "bfloat16"):
  for ra in (0, 4):
    r = json.load(open(f"{W}/ev-{dt}-ra{ra}/results.json"))
    out[f"{dt}_ra{ra}"] = r["final"]["test_accuracy"]
  m = json.load(open(f"{W}/{dt}/manifest.json"))
  out[f"{dt}_wall_s"] = m["wall_time_s"]; out[f"{dt}_surrogate_acc"] = m["surrogate_clean_test_accuracy"]
print(json.dumps(out, indent=1))
json.dump(out, open(f"{W}/summary.json", "w"), indent=1)
PY
