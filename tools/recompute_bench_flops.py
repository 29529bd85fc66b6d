"""Recount the FLOPs of a stored `run.py bench` JSON (e.g. docs/bench_h200_cifar10_sem.json,
written before the bench counted the lowered module) and print its table in TFLOP/s.

  python tools/recompute_bench_flops.py docs/bench_h200_cifar10_sem.json [CONFIG]

CONFIG (default configs/cifar10/sem.py) with the JSON's recorded fields gives the model and
the pass counts; only lowering happens here (no compile, no run), so any machine will do.
"""
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main(path: str, config: str = os.path.join(REPO, "configs/cifar10/sem.py")) -> list[dict]:
  import jax
  import jax.numpy as jnp
  from sem_jax.commands.bench import craft_passes, lowered_flops, pass_flops, peak_tflops
  from sem_jax.core import train
  from sem_jax.run import build, sharding
  from sem_jax.run.configfile import load_config
  from sem_jax.run.specs import gen_spec
  stored = json.load(open(path))
  rec = stored["config"]
  cfg = load_config(config, [f"{k}={v}" for k, v in rec.items() if k != "unroll_loops"])
  h, w, c = stored["image_shape"]
  model, tx, state = build.model_and_state(cfg, 10, (h, w, c), sharding.make_mesh(jax.devices()[:1]))
  B = cfg.batch_size
  gspec = gen_spec(cfg)
  one = pass_flops(model, state, (h, w, c), B)
  upd = lowered_flops(lambda s, v, t: train.update(model, tx, s, v, t), state,
                      jax.ShapeDtypeStruct((B, h, w, c), jnp.float32),
                      jax.ShapeDtypeStruct((B,), jnp.int32))
  craft = craft_passes(gspec.craft) * one
  pgd = (gspec.attack.steps if gspec.attack.active else 0) * one
  flops = {f"craft_{cfg.method}": craft, "surrogate_pgd": pgd, "surrogate_update": upd,
           "outer_step": craft + pgd + upd, "final_pass_craft": craft}
  peak = peak_tflops(stored["device_kind"], stored["dtype"])
  rows = []
  print(f"| piece, batch {B}, {stored['device_kind']} | median s | TFLOP | TFLOP/s | of peak |")
  print("| --- | --- | --- | --- | --- |")
  for p in stored["pieces"]:
    if p["piece"] not in flops:
      continue
    tf = flops[p["piece"]] / 1e12
    rate = tf / p["median_s"]
    rows.append({"piece": p["piece"], "median_s": p["median_s"], "tflop": tf, "tflops_per_s": rate,
                 "peak_fraction": rate / peak if peak else None})
    print(f"| {p['piece']} | {p['median_s']:.4f} | {tf:.2f} | {rate:.0f} | "
          + (f"{100 * rate / peak:.0f} % |" if peak else "- |"))
  print(f"one forward + input-gradient pass: {one / B / 1e9:.3f} GFLOP per image; peak used: "
        f"{peak} TFLOP/s ({stored['dtype']}, TF32 tensor cores at XLA's default precision)")
  return rows


if __name__ == "__main__":
  main(*sys.argv[1:])
