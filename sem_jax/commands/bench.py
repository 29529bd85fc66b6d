"""Throughput benchmark: time each jitted piece of a config's generation step.

For each piece (augmentation, noise crafting, surrogate PGD, surrogate update,
full outer step, final-pass crafting) it compiles once (compile time), reads its memory plan
from the compiled memory analysis (argument, output, temporary bytes per device) and the
device's peak memory after the compile and after the runs, runs warm-up calls, then times
``reps`` calls with ``block_until_ready`` and reports the median seconds, images/s and achieved
TFLOP/s, with the fraction of the device's datasheet peak for the dtype where it is known
(``reps=0``: compile only). Data is random, shaped like the config's dataset. No timing is ever
asserted in tests.

FLOPs (``flops_source: "lowered x passes"``): XLA's cost analysis of the *lowered* module of one
forward + input-gradient pass of the surrogate (and of one update step), before any backend
rewrites it, times the piece's pass count: crafting K·J passes per image (REM: K·J·(1 + its
PGD steps)), PGD its steps, the outer step their sum plus the update. A compiled module's count
is not used: on GPU, XLA lowers convolutions and matmuls to cuDNN / cuBLAS custom calls, which
its cost analysis counts as nothing, and a rolled loop's body is counted once. The compiled
count is kept as ``xla_compiled_flops`` for reference.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.core import attacks, keys as K, train

from sem_jax.core.crafting import noise as N
from sem_jax.core.augment import augment
from sem_jax.core.crafting.methods import METHODS
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


# Dense datasheet peaks, TFLOP/s per chip: float32 on NVIDIA is TF32 on the tensor cores (XLA's
# default matmul precision); "float32_highest" is the CUDA-core peak (precision "highest").
PEAK_TFLOPS = {
    "H100": {"float32": 494.7, "float32_highest": 66.9, "bfloat16": 989.4},
    "H200": {"float32": 494.7, "float32_highest": 66.9, "bfloat16": 989.4},
    "A100": {"float32": 156.0, "float32_highest": 19.5, "bfloat16": 312.0},
    "TPU v4": {"bfloat16": 275.0},
    "TPU v5 lite": {"bfloat16": 197.0},
    "TPU v5e": {"bfloat16": 197.0},
}


def peak_tflops(device_kind: str, dtype: str, precision: str | None = None) -> float | None:
  """The datasheet peak of one chip of ``device_kind`` for ``dtype`` (None: not in the table)."""
  key = "float32_highest" if dtype == "float32" and precision == "highest" else dtype
  for name, peaks in PEAK_TFLOPS.items():
    if name.lower() in device_kind.lower():
      return peaks.get(key)
  return None


def lowered_flops(fn: Callable, *args) -> float:
  """FLOPs of ``jax.jit(fn)(*args)`` from XLA's cost analysis of the lowered, unoptimised module
  (the same on every backend: convolutions are still convolutions there)."""
  cost = jax.jit(fn).lower(*args).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get("flops", float("nan")))


def pass_flops(model, state, shape, batch: int) -> float:
  """FLOPs of one forward + input-gradient pass of the frozen ``model`` over ``batch`` images
  of ``shape`` (H, W, C): the unit every crafting and PGD step repeats."""
  x = jax.ShapeDtypeStruct((batch, *shape), jnp.float32)
  y = jax.ShapeDtypeStruct((batch,), jnp.int32)
  grad = lambda s, v, t: jax.grad(lambda u: attacks.ce(train.logits_fn(model, s)(u), t).sum())(v)
  return lowered_flops(grad, state, x, y)


def craft_passes(spec: N.CraftSpec) -> int:
  """Network passes per image of one crafting call: K·J, times 1 + PGD steps for REM's offset."""
  if not METHODS[spec.method].descends:
    return 0
  inner = spec.adversary.steps if METHODS[spec.method].offset == "pgd" else 0
  return spec.steps * spec.num_samples * (1 + inner)


def _peak_bytes() -> int | None:
  try:
    return (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
  except Exception:   # a backend without memory statistics
    return None


def _measure(name: str, fn: Callable, args: tuple, images: int, reps: int, warmup: int,
             flops: float, xla_scale: float = 1.0) -> dict:
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  after_compile = _peak_bytes()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla = float((cost or {}).get("flops", float("nan"))) * xla_scale
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
          "tflops_per_s": flops / med / 1e12, "xla_compiled_flops": xla,
          "compile_s": compile_s, "reps": reps, "images": images,
          "peak_bytes_after_compile": after_compile, "peak_bytes_after_run": _peak_bytes(),
          **memory}


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
  cache = _cache_state()
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

  aug = jax.jit(lambda v, k: augment(v, wrap(k), cfg.augment_pad, crop_size=cfg.crop_size),
                in_shardings=(bat, bat), out_shardings=bat)
  results.append(_measure("augmentation", aug, (x, keys), B, reps, warmup,
                          lowered_flops(aug, x, keys)))
  one_pass = pass_flops(model, state, (h, w, c), B)
  craft_flops = craft_passes(spec) * one_pass
  craft = jax.jit(lambda s, v, t, k: N.craft(spec, train.logits_fn(model, s), v, t, wrap(k)),
                  in_shardings=(rep, bat, bat, bat), out_shardings=bat)
  # XLA's compiled count of a rolled loop holds its body once: scaled by K for reference
  # (REM's body holds its own rolled PGD, which cannot be scaled exactly).
  craft_scale = (float("nan") if cfg.method == "rem" else cfg.noise_steps) if rolled else 1.0
  results.append(_measure(f"craft_{cfg.method}", craft, (state, x, y, keys), B, reps, warmup,
                          craft_flops, craft_scale))
  pgd_flops = pgd_steps * one_pass
  if pgd_steps:
    pgd = jax.jit(lambda s, v, t, k: train.adversarial_inputs(model, s, v, t, wrap(k),
                                                              gspec.attack),
                  in_shardings=(rep, bat, bat, bat), out_shardings=bat)
    results.append(_measure("surrogate_pgd", pgd, (state, x, y, keys), B, reps, warmup,
                            pgd_flops, cfg.adv_steps if rolled else 1.0))
  upd = jax.jit(lambda s, v, t: train.update(model, tx, s, v, t, dropout_key=jax.random.key(0)),
                in_shardings=(rep, bat, bat),
                out_shardings=(rep, rep))
  upd_flops = lowered_flops(upd, state, x, y)
  results.append(_measure("surrogate_update", upd, (state, x, y), B, reps, warmup, upd_flops))
  table = jax.jit(lambda: jnp.zeros((B, h, w, c), jnp.int8), out_shardings=bat)()
  batch = {"x": x_u8, "y": y, "idx": idx, "valid": sharding.put_batch(mesh, np.ones(B, bool))}
  res = _measure("outer_step", steps.outer, (state, table, root, batch), B, reps, warmup,
                 craft_flops + pgd_flops + upd_flops)
  if rolled:  # the reference count, rebuilt from the scaled pieces
    res["xla_compiled_flops"] = sum(r["xla_compiled_flops"] for r in results
                                    if r["piece"] != "augmentation")
  results.append(res)
  acc = {"table": table, "written": jax.device_put(np.zeros(B, np.int32), bat)}
  res = _measure("final_pass_craft", steps.final, (state, acc, root, batch), B, reps, warmup,
                 craft_flops, craft_scale)
  res["seconds_per_image"] = res["median_s"] / B
  results.append(res)
  extra = {"pass_flops": one_pass, "craft_passes_per_image": craft_passes(spec),
           "compilation_cache": cache}
  return {**_summary(cfg, mesh, (h, w, c), results), **extra}


def _cache_state() -> dict:
  """The persistent compilation cache as the bench starts: its folder and how many entries it
  held (a warm cache skips compiles, and with them convolution autotuning)."""
  d = jax.config.jax_compilation_cache_dir
  entries = None
  if d and os.path.isdir(d):
    entries = len(os.listdir(d))
  return {"dir": d or None, "entries_at_start": entries, "warm": bool(entries)}


def _summary(cfg: GenerateConfig, mesh, shape, results: list[dict]) -> dict:
  """The benchmark's result dict: the pieces, the device, the config, peak memory, and each
  piece's fraction of the device's datasheet peak where the device is in PEAK_TFLOPS."""
  h, w, c = shape
  dev = jax.devices()[0]
  mem = _peak_bytes()
  precision = jax.config.jax_default_matmul_precision
  peak = peak_tflops(dev.device_kind, cfg.dtype, precision)
  for r in results:
    r["peak_fraction"] = (r["tflops_per_s"] / (peak * mesh.devices.size)
                          if peak and r["median_s"] == r["median_s"] else None)
  return {
      "config": {k: getattr(cfg, k) for k in ("method", "model", "batch_size", "noise_steps",
                                              "num_samples", "adv_steps", "dtype", "unroll_loops")},
      "image_shape": [h, w, c], "device_kind": dev.device_kind, "device_count": int(mesh.devices.size),
      "platform": dev.platform, "dtype": cfg.dtype, "jax_version": jax.__version__,
      "flops_source": "lowered x passes", "matmul_precision": precision or "default",
      "peak_tflops_per_device": peak,
      "peak_device_bytes": mem,
      "peak_host_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      "pieces": results,
  }


def format_table(result: dict) -> str:
  mib = lambda v: f"{v / 2**20:>9.1f}" if v is not None else f"{'-':>9}"
  pct = lambda v: f"{100 * v:>7.1f}%" if v is not None else f"{'-':>8}"
  rows = [f"{'piece':<20} {'median s':>10} {'images/s':>10} {'TFLOP':>9} {'TFLOP/s':>8} "
          f"{'of peak':>8} {'compile s':>10} {'arg MiB':>9} {'out MiB':>9} {'temp MiB':>9}"]
  for r in result["pieces"]:
    rows.append(f"{r['piece']:<20} {r['median_s']:>10.4f} {r['images_per_s']:>10.2f} "
                f"{r['flops'] / 1e12:>9.4f} {r['tflops_per_s']:>8.3f} {pct(r['peak_fraction'])} "
                f"{r['compile_s']:>10.1f} {mib(r['argument_bytes'])} {mib(r['output_bytes'])} "
                f"{mib(r['temp_bytes'])}")
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
