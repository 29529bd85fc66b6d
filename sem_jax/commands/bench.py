"""Throughput benchmark: time each jitted piece of a config's generation step.

For each piece (augmentation, noise crafting, surrogate PGD, surrogate update,
full outer step, final-pass crafting) it compiles once (compile time), reads
XLA's FLOP count from the compiled cost analysis and its memory plan from the
compiled memory analysis (argument, output, temporary bytes per device), runs
warm-up calls, then times ``reps`` calls with ``block_until_ready`` and reports
the median seconds, images/s and achieved GFLOP/s (``reps=0``: compile only, for
configs too large to run on the machine at hand). Data is random, shaped like the
config's dataset. No timing is ever asserted in tests.

XLA counts a rolled loop body once; with ``unroll_loops=False`` the FLOPs of
crafting (EM/SEM) and PGD are therefore scaled by their trip counts (reported as
``flops_source: "scaled"``), and REM's (a loop inside a loop) are reported as NaN.
"""
from __future__ import annotations

import json
import resource
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.core import keys as K, noise as N, train
from sem_jax.core.augment import augment
from sem_jax.errors import SemJaxError
from sem_jax.run import build, sharding
from sem_jax.run.config import GenerateConfig
from sem_jax.run.inputs import dataset_for
from sem_jax.run.runtime import loops_unrolled
from sem_jax.run.specs import gen_spec
from sem_jax.run.steps import generation_steps

# (H, W, C, classes) of datasets whose files need not exist to benchmark
SHAPES = {"mnist5k": (32, 32, 1, 10), "cifar10": (32, 32, 3, 10), "cifar100": (32, 32, 3, 100),
          "imagenet_subset": (256, 256, 3, 100)}


def _shape(cfg: GenerateConfig):
  if cfg.dataset in SHAPES:
    return SHAPES[cfg.dataset]
  ds = dataset_for(cfg)
  return (*ds.image_shape, ds.num_classes)


def _measure(name: str, fn: Callable, args: tuple, images: int, reps: int, warmup: int,
             flops_scale: float = 1.0) -> dict:
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float((cost or {}).get("flops", float("nan"))) * flops_scale
  memory = _memory(compiled)
  times = []
  if reps:
    for _ in range(warmup):
      jax.block_until_ready(compiled(*args))
    for _ in range(reps):
      t = time.perf_counter()
      jax.block_until_ready(compiled(*args))
      times.append(time.perf_counter() - t)
  med = statistics.median(times) if times else float("nan")
  return {"piece": name, "median_s": med, "images_per_s": images / med, "flops": flops,
          "gflops_per_s": flops / med / 1e9, "compile_s": compile_s, "reps": reps,
          "images": images, **memory}


def _memory(compiled) -> dict:
  """XLA's memory plan of a compiled piece, bytes per device: arguments, outputs, temporaries
  (activations and workspace), and their sum less what outputs alias from arguments."""
  try:
    m = compiled.memory_analysis()
  except Exception:   # a backend without memory analysis
    m = None
  if m is None:
    return {"argument_bytes": None, "output_bytes": None, "temp_bytes": None, "total_bytes": None}
  arg, out = int(m.argument_size_in_bytes), int(m.output_size_in_bytes)
  temp, alias = int(m.temp_size_in_bytes), int(getattr(m, "alias_size_in_bytes", 0))
  return {"argument_bytes": arg, "output_bytes": out, "temp_bytes": temp,
          "total_bytes": arg + out + temp - alias}


def run_bench(cfg: GenerateConfig, reps: int = 3, warmup: int = 1, devices=None) -> dict:
  """Benchmark cfg's pieces on random data; returns the result dict (also the JSON line)."""
  cfg = cfg.validate()
  if reps < 0:
    raise SemJaxError(f"--steps must be >= 0 (0: compile only), got {reps}")
  if cfg.one_pass:
    raise SemJaxError(f"bench times the generation step of sem, rem and em; {cfg.method} has no "
                      "surrogate-training loop (time it with `run.py generate`)")
  h, w, c, classes = _shape(cfg)
  mesh = sharding.make_mesh(devices)
  sharding.check_batch(cfg.batch_size, mesh)
  B = cfg.batch_size
  model, tx, state = build.model_and_state(cfg, classes, (h, w, c), mesh)
  gspec = gen_spec(cfg)
  spec = gspec.craft
  steps = generation_steps(model, tx, gspec, mesh, donate=False)
  rng = np.random.default_rng(0)
  rep, bat = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  x_u8, y, idx = sharding.put_batch(
      mesh, rng.integers(0, 256, (B, h, w, c), dtype=np.uint8),
      rng.integers(0, classes, B).astype(np.int32), np.arange(B, dtype=np.int32))
  root = sharding.put_replicated(mesh, np.asarray(jax.random.key_data(jax.random.key(1))))
  x = jax.jit(lambda v: v.astype(jnp.float32) / 255 - 0.5, out_shardings=bat)(x_u8)
  keys = jax.jit(lambda i: jax.random.key_data(K.per_sample(jax.random.key(2), i)),
                 out_shardings=bat)(idx)
  wrap = jax.random.wrap_key_data
  rolled = not loops_unrolled(cfg.unroll_loops)
  pgd_steps = gspec.attack.steps if gspec.attack.active else 0
  results = []

  aug = jax.jit(lambda v, k: augment(v, wrap(k), cfg.augment_pad, crop_size=cfg.crop_size), in_shardings=(bat, bat),
                out_shardings=bat)
  results.append(_measure("augmentation", aug, (x, keys), B, reps, warmup))
  craft = jax.jit(lambda s, v, t, k: N.craft(spec, train.logits_fn(model, s), v, t, wrap(k)),
                  in_shardings=(rep, bat, bat, bat), out_shardings=bat)
  # rolled loops: XLA counts one descent step's body once. For EM/SEM that body is the whole
  # step, so scale by K; REM's body holds its own rolled PGD, which cannot be scaled exactly.
  craft_scale = (float("nan") if cfg.method == "rem" else cfg.noise_steps) if rolled else 1.0
  results.append(_measure(f"craft_{cfg.method}", craft, (state, x, y, keys), B, reps, warmup,
                          craft_scale))
  if pgd_steps:
    pgd = jax.jit(lambda s, v, t, k: train.adversarial_inputs(model, s, v, t, wrap(k),
                                                              gspec.attack),
                  in_shardings=(rep, bat, bat, bat), out_shardings=bat)
    results.append(_measure("surrogate_pgd", pgd, (state, x, y, keys), B, reps, warmup,
                            cfg.adv_steps if rolled else 1.0))
  upd = jax.jit(lambda s, v, t: train.update(model, tx, s, v, t, dropout_key=jax.random.key(0)),
                in_shardings=(rep, bat, bat),
                out_shardings=(rep, rep))
  results.append(_measure("surrogate_update", upd, (state, x, y), B, reps, warmup))
  table = jax.jit(lambda: jnp.zeros((B, h, w, c), jnp.int8), out_shardings=bat)()
  batch = {"x": x_u8, "y": y, "idx": idx, "valid": sharding.put_batch(mesh, np.ones(B, bool))}
  res = _measure("outer_step", steps.outer, (state, table, root, batch), B, reps, warmup)
  if rolled:  # rebuild the FLOP count from the pieces, which were scaled
    res["flops"] = sum(r["flops"] for r in results if r["piece"] != "augmentation")
    res["gflops_per_s"] = res["flops"] / res["median_s"] / 1e9
  results.append(res)
  acc = {"table": table, "written": jax.device_put(np.zeros(B, np.int32), bat)}
  res = _measure("final_pass_craft", steps.final, (state, acc, root, batch), B, reps, warmup,
                 craft_scale)
  res["seconds_per_image"] = res["median_s"] / B
  results.append(res)

  return _summary(cfg, mesh, (h, w, c), rolled, results)


def _summary(cfg: GenerateConfig, mesh, shape, rolled: bool, results: list[dict]) -> dict:
  """The benchmark's result dict: the pieces, the device, the config, peak memory."""
  h, w, c = shape
  dev = jax.devices()[0]
  mem = None
  try:
    stats = dev.memory_stats() or {}
    mem = stats.get("peak_bytes_in_use")
  except Exception:
    pass
  return {
      "config": {k: getattr(cfg, k) for k in ("method", "model", "batch_size", "noise_steps",
                                              "num_samples", "adv_steps", "dtype", "unroll_loops")},
      "image_shape": [h, w, c], "device_kind": dev.device_kind, "device_count": int(mesh.devices.size),
      "platform": dev.platform, "dtype": cfg.dtype, "jax_version": jax.__version__,
      "flops_source": "scaled" if rolled else "xla",
      "peak_device_bytes": mem,
      "peak_host_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      "pieces": results,
  }


def format_table(result: dict) -> str:
  mib = lambda v: f"{v / 2**20:>9.1f}" if v is not None else f"{'-':>9}"
  rows = [f"{'piece':<20} {'median s':>10} {'images/s':>10} {'GFLOP':>10} {'GFLOP/s':>9} "
          f"{'compile s':>10} {'arg MiB':>9} {'out MiB':>9} {'temp MiB':>9}"]
  for r in result["pieces"]:
    rows.append(f"{r['piece']:<20} {r['median_s']:>10.4f} {r['images_per_s']:>10.2f} "
                f"{r['flops'] / 1e9:>10.2f} {r['gflops_per_s']:>9.1f} {r['compile_s']:>10.1f} "
                f"{mib(r['argument_bytes'])} {mib(r['output_bytes'])} {mib(r['temp_bytes'])}")
  c = result["config"]
  rows.append(f"{result['device_count']} x {result['device_kind']} ({result['platform']}), "
              f"dtype {result['dtype']}, {c['method']} {c['model']} batch {c['batch_size']} "
              f"K={c['noise_steps']} J={c['num_samples']} PGD={c['adv_steps']}, "
              f"peak host RSS {result['peak_host_rss_bytes'] / 2**30:.2f} GiB"
              + (f", peak device {result['peak_device_bytes'] / 2**30:.2f} GiB"
                 if result["peak_device_bytes"] else ""))
  return "\n".join(rows)


def to_json_line(result: dict) -> str:
  return json.dumps(result, sort_keys=True)
