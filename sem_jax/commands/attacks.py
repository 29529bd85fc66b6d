"""``generate`` for the field's attacks that are not crafting loops (docs/method.md, "The
field's other attacks"): ``lsp``, ``ar``, ``ops`` and ``cuda`` (class-wise patterns and
filters, no model), ``entf`` (against a fixed adversarially trained reference model),
``ntga`` (a neural tangent kernel) and ``dc`` and ``gue`` (trained noise generators,
[`sem_jax.commands.deepconfuse`][sem_jax.commands.deepconfuse]).

Each writes what a crafted run writes: ``noise.npy`` (int8 pixel levels; int16 for ops and
cuda, whose pixels may move by 255 levels), a manifest recording the method's budget in its own
norm (checked here before anything is published, and again by ``verify``), every index
written once, and ``metrics.jsonl``. The same config and seed give the same noise bit for
bit: every draw is keyed by (seed, stream, dataset index).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.core.crafting import budgets, noise as N

from sem_jax.core import keys as K

from sem_jax.core.poisons import cuda, entf, ntga, one_pixel, patterns
from sem_jax.core.crafting.methods import METHODS
from sem_jax.core.units import fraction, normalize, whole_levels
from sem_jax.data.dataset import Dataset, fingerprint
from sem_jax.errors import SemJaxError
from sem_jax.run import identity as run_identity, loop, machine
from sem_jax.run.artifacts import (MANIFEST_FILE, NOISE_FILE, finished_manifest, manifest_record,
                                   save_noise)
from sem_jax.run.config import GenerateConfig
from sem_jax.run.runtime import loops_unrolled
from sem_jax.run.victim import load_victim, model_digest
from sem_jax.run.specs import (CLASS_PATTERNS, block_violations, budget_with_filters,
                               cuda_filters)

BLOCK = 2048          # images per block of the pattern methods (memory, not results)
PATTERN, LABELS = CLASS_PATTERNS, 8   # streams of the pattern draws (class patterns, per-image draws)


def generate_other(cfg: GenerateConfig, workdir: str, ds: Dataset, mesh, log) -> dict | None:
  """Generate ``cfg.method``'s noise into ``workdir`` (see [`sem_jax.commands.generate.
  generate_noise`][sem_jax.commands.generate.
  generate_noise]); returns the manifest, or None when a dc run stopped early."""
  if cfg.num_classes and cfg.num_classes != ds.num_classes:
    raise SemJaxError(f"num_classes {cfg.num_classes} does not match the dataset's {ds.num_classes}")
  kind = METHODS[cfg.method].kind
  if kind == "generator":
    from sem_jax.commands import deepconfuse
    cfg = deepconfuse.check(cfg, ds, mesh, log)
  data = fingerprint(ds)
  moved = []
  if kind == "reference":   # the reference model is known by its digest; its path is a record
    data = {**data, "tap_model_sha256": model_digest(cfg.tap_model)}
    moved = [("config", "tap_model")]
  identity = run_identity.moved_inputs(
      workdir, {"config": cfg.result_fields(), "data": data}, moved, log)
  fp = run_identity.run_fingerprint(identity["config"], data)
  with loop.Run(workdir, identity, fp, MANIFEST_FILE, cfg.max_checkpoints, log,
                accept=run_identity.accepted_fingerprints(identity["config"], data)) as run:
    if run.done:
      return finished_manifest(run)
    budget = budget_with_filters(cfg, ds.image_shape, ds.num_classes)
    run.say(f"{cfg.method} on {ds.name}: {ds.num_train} train images {ds.image_shape}, "
            f"{ds.num_classes} classes; budget {budgets.describe(budget)}")
    t0, extra = time.time(), {}
    if kind == "generator":
      out = deepconfuse.run(run, cfg, ds, mesh)
      if out is None:
        return None
      noise, extra = out
    else:
      run.start_without_checkpoints(0)
      noise, extra = (pattern_noise(cfg, ds, run.say) if kind == "pattern"
                      else entf_noise(cfg, ds, mesh, run.say) if kind == "reference"
                      else ntga_noise(cfg, ds, run.say))
    return publish(run, cfg, ds, data, noise, budget, time.time() - t0, extra)


# ----------------------------------------------------------------------------- patterns
def pattern_noise(cfg: GenerateConfig, ds: Dataset, say) -> tuple[np.ndarray, dict]:
  """(noise table (N, H, W, C) in levels, manifest fields) of lsp, ar or ops."""
  root = K.root_key(cfg.seed)
  labels = np.asarray(ds.train_labels).astype(np.int32)
  n, shape = ds.num_train, tuple(ds.image_shape)
  if cfg.method == "ops":
    images = np.asarray(ds.train_images)
    fit = ds.fit_indices
    chosen = one_pixel.search(images[fit], labels[fit], ds.num_classes)
    say("ops: per class (row, column, colour) " + " ".join(f"{k}:{p}" for k, p in
                                                           enumerate(chosen)))
    return one_pixel.noise(images, labels, chosen), {
        "ops_pixels": [{"row": r, "column": c, "colour": one_pixel.colours(shape[-1])[code]
                        .astype(int).tolist()} for r, c, code in chosen]}
  if cfg.method == "cuda":
    images = np.asarray(ds.train_images)
    filt = cuda_filters(cfg, ds.num_classes)
    out = np.empty((n, *shape), np.int16)
    for a in range(0, n, BLOCK):
      out[a:a + BLOCK] = cuda.noise(images[a:a + BLOCK], labels[a:a + BLOCK], filt)
      say(f"cuda: {min(a + BLOCK, n)}/{n} images")
    return out, {}
  class_key = K.stream(root, PATTERN)
  extra: dict = {}
  if cfg.method == "ar":
    coeffs = patterns.ar_coefficients(class_key, ds.num_classes, shape[-1])
    extra["ar_coefficients"] = np.asarray(coeffs).round(6).tolist()
    radius = cfg.noise_radius / 255.0
    make = lambda keys, y: patterns.ar_noise(keys, coeffs, y, shape, radius, cfg.ar_norm,
                                             cfg.ar_crop)
  else:
    make = lambda keys, y: patterns.lsp_noise(class_key, keys, y, ds.num_classes, shape,
                                              cfg.lsp_patch, fraction(cfg.noise_radius),
                                              cfg.lsp_class_sep)
  out = np.empty((n, *shape), np.int8)
  for a in range(0, n, BLOCK):
    idx = np.arange(a, min(a + BLOCK, n))
    keys = K.per_sample(K.stream(root, LABELS), jnp.asarray(idx, jnp.int32))
    delta = make(keys, labels[idx])
    if cfg.method == "ar" and cfg.ar_norm == "linf":
      out[idx] = np.asarray(N.quantize(delta, whole_levels(cfg.noise_radius)))
    else:
      out[idx] = budgets.to_levels(delta)
    say(f"{cfg.method}: {idx[-1] + 1}/{n} images")
  return out, extra


# ----------------------------------------------------------------------------- entf
ENTF_START = 9     # the key stream of EntF's start and views
ENTF_BLOCK = 256   # images crafted at once (memory, not results: each image is crafted alone)


def entf_noise(cfg: GenerateConfig, ds: Dataset, mesh, say) -> tuple[np.ndarray, dict]:
  """(noise table, manifest fields) of EntF against the adversarially trained reference model
  of ``cfg.tap_model``: the class centroids of its features on the training images, then each
  image crafted in blocks ([`sem_jax.core.poisons.entf`][sem_jax.core.poisons.entf])."""
  model, state, ecfg, results = load_victim(cfg.tap_model, list(mesh.devices.flat)[:1],
                                            for_data=ds)
  if ecfg.adv_radius <= 0 or results["noise"]["method"] != "clean":
    raise SemJaxError(f"entf's reference model must be adversarially trained on clean data; "
                      f"tap_model {cfg.tap_model} has ρa {ecfg.adv_radius:g} on "
                      f"{results['noise']['method']} data (train one with `run.py evaluate "
                      "--noise none --config.adv_radius=4`)")
  spec = entf.EntFSpec(radius=cfg.noise_radius, steps=cfg.noise_steps,
                       step_size=cfg.noise_step_size, recipe=cfg.entf_recipe,
                       augment_pad=cfg.augment_pad if cfg.augment else -1)
  embed = entf.embedding_fn(model, state)
  images = np.asarray(ds.train_images)
  labels = np.asarray(ds.train_labels).astype(np.int32)
  n = ds.num_train
  features = jax.jit(lambda x: embed(normalize(x))[0])
  feats = np.concatenate([np.asarray(features(jnp.asarray(images[a:a + ENTF_BLOCK])))
                          for a in range(0, n, ENTF_BLOCK)])
  cents = entf.centroids(jnp.asarray(feats), jnp.asarray(labels), ds.num_classes)
  root = K.stream(K.root_key(cfg.seed), ENTF_START)
  keys_of = lambda idx: K.per_sample(root, idx)
  if loops_unrolled(cfg.unroll_loops):   # one jitted step, called from the host per step
    first = jax.jit(lambda x, idx: entf.start(spec, normalize(x), keys_of(idx)))
    one = jax.jit(lambda x, y, idx, i, d: entf.update(spec, embed, normalize(x), y, cents,
                                                     keys_of(idx), i, d))

    def make(x, y, idx):
      d = first(x, idx)
      for i in range(spec.steps):
        d = one(x, y, idx, i, d)
      return N.quantize(d, whole_levels(cfg.noise_radius))
  else:
    make = jax.jit(lambda x, y, idx: N.quantize(
        entf.craft(spec, embed, normalize(x), y, cents, keys_of(idx)),
        whole_levels(cfg.noise_radius)))
  out = np.empty(images.shape, np.int8)
  t0 = time.time()
  for a in range(0, n, ENTF_BLOCK):
    idx = np.arange(a, a + ENTF_BLOCK) % n          # the last block wraps: one compiled shape
    out[idx[:min(ENTF_BLOCK, n - a)]] = np.asarray(make(
        jnp.asarray(images[idx]), jnp.asarray(labels[idx]), jnp.asarray(idx, jnp.int32)))[
            :min(ENTF_BLOCK, n - a)]
    done = min(a + ENTF_BLOCK, n)
    say(f"entf: {done}/{n} images, {done / (time.time() - t0):.1f} img/s")
  say(f"entf ({cfg.entf_recipe}): reference {ecfg.model} at ρa {ecfg.adv_radius:g} "
      f"(clean test accuracy {results['final']['test_accuracy']:.4f}), "
      f"{feats.shape[1]} features")
  return out, {"entf_reference": {"model": ecfg.model, "adv_radius": ecfg.adv_radius,
                                  "clean_test_accuracy": results["final"]["test_accuracy"],
                                  "features": int(feats.shape[1])}}


# ----------------------------------------------------------------------------- ntga
def ntga_spec(cfg: GenerateConfig) -> ntga.NTGASpec:
  return ntga.NTGASpec(radius=cfg.noise_radius, steps=cfg.noise_steps,
                       step_size=cfg.noise_step_size, time=cfg.ntga_time,
                       depth=cfg.ntga_depth)


def ntga_noise(cfg: GenerateConfig, ds: Dataset, say) -> tuple[np.ndarray, dict]:
  """(noise table, manifest fields) of NTGA: the training set in seeded blocks of
  ``ntga_block`` images, each attacked against ``ntga_targets`` other clean training images."""
  spec = ntga_spec(cfg)
  labels = np.asarray(ds.train_labels).astype(np.int32)
  images = np.asarray(ds.train_images)
  fit = ds.fit_indices
  rng = np.random.default_rng([cfg.seed, 0x4E54])
  order = rng.permutation(ds.num_train)
  eye = np.eye(ds.num_classes, dtype=np.float32)
  attack = jax.jit(lambda x, y, xt, yt: ntga.attack_block(spec, x, y, xt, yt))
  out = np.zeros(images.shape, np.int8)
  written = np.zeros(ds.num_train, np.int32)
  t0 = time.time()
  blocks = range(0, ds.num_train, cfg.ntga_block)
  for b, a in enumerate(blocks):
    block = order[a:a + cfg.ntga_block]
    others = np.setdiff1d(fit, block)
    pick = np.random.default_rng([cfg.seed, 0x4E54, b]).choice(
        others, min(cfg.ntga_targets, len(others)), replace=False)
    delta = attack(normalize(jnp.asarray(images[block])), eye[labels[block]],
                   normalize(jnp.asarray(images[pick])), eye[labels[pick]])
    out[block] = np.asarray(N.quantize(delta, whole_levels(cfg.noise_radius)))
    written[block] += 1
    done = min(a + cfg.ntga_block, ds.num_train)
    say(f"ntga: block {b + 1}/{len(blocks)}, {done}/{ds.num_train} images, "
        f"{done / (time.time() - t0):.1f} img/s")
  if not (written == 1).all():
    raise RuntimeError(f"ntga wrote {int((written == 1).sum())} of {ds.num_train} indices once")
  return out, {"ntga_kernel": f"fully connected ReLU NTK, depth {cfg.ntga_depth} (JAX)"}


# ----------------------------------------------------------------------------- artifacts
def publish(run: loop.Run, cfg: GenerateConfig, ds: Dataset, data: dict, noise: np.ndarray,
            budget: dict, made_s: float, extra: dict) -> dict:
  """Check ``noise`` against the budget and the dataset, write noise.npy and the manifest."""
  if noise.shape != (ds.num_train, *ds.image_shape):
    raise RuntimeError(f"{cfg.method} made noise {noise.shape} for {ds.num_train} images")
  bad = block_violations(budget, noise, np.asarray(ds.train_images),
                         np.asarray(ds.train_labels))
  if bad:
    raise RuntimeError(f"{cfg.method}: {bad} image(s) outside its budget "
                       f"({budgets.describe(budget)})")
  noise = noise.astype(budgets.storage_dtype(budget))
  stored = {"noise_format": "npy", "noise_file": NOISE_FILE,
            "noise_max_abs": int(np.abs(noise.astype(np.int32)).max(initial=0))}
  if jax.process_index() == 0:
    stored["noise_sha256"] = save_noise(f"{run.workdir}/{NOISE_FILE}", noise)
  wall = run.elapsed()

  def record() -> dict:
    run.write_metrics({"event": "final", "step": 0, "made_s": made_s, "wall_time_s": wall})
    return manifest_record(
        cfg.method, cfg, ds, data["sha256"], stored, budget=budget,
        noise_dtype=noise.dtype.name, final_pass_regenerated=ds.num_train,
        final_pass_s=made_s, jax_version=jax.__version__, device_count=jax.device_count(),
        process_count=jax.process_count(), device_kind=jax.devices()[0].device_kind,
        machine=machine.describe(),
        wall_time_s=wall, **extra)

  manifest = run.publish(record, "sem_jax_generate_done")
  run.say(f"done in {loop.fmt_time(wall)}: noise {noise.shape} {noise.dtype.name}, "
          f"{budgets.describe(budget)}, max |noise| {manifest['noise_max_abs']} levels, "
          f"{ds.num_train}/{ds.num_train} written -> {run.workdir}")
  return manifest
