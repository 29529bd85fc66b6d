"""Does the noise protect? Train a fresh victim on the protected training set and test it on
the CLEAN test set (SPEC section 6).

The victim sees ``clip(uint8 image + int8 noise)`` (only on the protected subset
of indices), then the thief's preprocessing defenses, then, per batch, its own
flip + crop augmentation, cutout, PGD adversarial training at ρa, and mixup or
cutmix. Everything is keyed by (seed, step, position), so a run resumes from its
orbax checkpoint to the bit-identical model. The final checkpoint is kept: it is
the "normally trained model" that TAP attacks (``tap_model``).

Outputs in the workdir: ``results.json`` (final and per-evaluation clean test
accuracy and loss, per-class accuracy, train accuracy, config, seed, wall time),
``accuracy.png`` and ``metrics.jsonl``.
"""
from __future__ import annotations

import functools
import math
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import sem_jax
from sem_jax import artifacts, attacks, defenses as D, keys as K, sharding, train
from sem_jax.augment import augment, model_view
from sem_jax.checkpoint import INTEGRITY_FILE, Checkpoints
from sem_jax.config import EvalConfig
from sem_jax.data import Dataset, normalize, protect
from sem_jax.errors import SemJaxError
from sem_jax.generate import (CHECKPOINT_DIR, StopSignal, _DONE, _fmt_time, batch_indices,
                              data_fingerprint, dataset_for, padded_batches, prepare_workdir,
                              Throughput, check_crop, run_fingerprint, step_boundary,
                              stopped_early)
from sem_jax.models import create_model

RESULTS_FILE = "results.json"
PLOT_FILE = "accuracy.png"
SUBSET_SEED = 0x9A27


# ----------------------------------------------------------------------------- inputs
def protected_indices(seed: int, num: int, fraction: float) -> np.ndarray:
  """Sorted dataset indices that carry noise: the first round(p N) of a (seed)-permutation."""
  perm = np.random.default_rng([seed, SUBSET_SEED]).permutation(num)
  return np.sort(perm[:int(round(fraction * num))]).astype(np.int64)


def load_noise_for(noise_dir: str, ds: Dataset) -> tuple[np.ndarray, dict]:
  """The int8 noise table of a finished generate run, checked against ``ds`` (one-line errors)."""
  if not os.path.isdir(noise_dir):
    raise SemJaxError(f"noise directory not found: {noise_dir} (use --noise none for clean data)")
  mpath = os.path.join(noise_dir, artifacts.MANIFEST_FILE)
  if not os.path.exists(mpath):
    raise SemJaxError(f"{noise_dir} holds no finished generate run ({artifacts.MANIFEST_FILE} "
                      "missing)")
  manifest = artifacts.read_json(mpath)
  shape = tuple(manifest.get("noise_shape", ()))
  if shape != ds.train_images.shape:
    raise SemJaxError(f"noise shape {shape} does not match the {ds.name} training images "
                      f"{ds.train_images.shape}")
  want = manifest.get("dataset", {}).get("sha256")
  if want and want != data_fingerprint(ds)["sha256"]:
    raise SemJaxError(f"the noise in {noise_dir} was generated for different training images "
                      f"than this {ds.name} dataset (dataset SHA-256 mismatch)")
  noise = artifacts.read_noise(noise_dir, manifest)
  if noise.shape != ds.train_images.shape:
    raise SemJaxError(f"noise shape {noise.shape} does not match the {ds.name} training images "
                      f"{ds.train_images.shape}")
  return noise, manifest


def training_set(cfg: EvalConfig, ds: Dataset, noise: np.ndarray | None):
  """The images the victim trains on: (uint8 images, labels, dataset indices, #protected)."""
  n = ds.num_train
  prot = protected_indices(cfg.seed, n, cfg.protected_fraction)
  if cfg.unprotected_only:
    keep = np.setdiff1d(np.arange(n), prot)
    images, labels, used, n_prot = ds.train_images[keep], ds.train_labels[keep], keep, 0
  else:
    images = ds.train_images
    if noise is not None and len(prot):
      mask = np.zeros(n, bool)
      mask[prot] = True
      images = images.copy()
      images[mask] = protect(ds.train_images[mask], noise[mask])
    labels, used, n_prot = ds.train_labels, np.arange(n), (len(prot) if noise is not None else 0)
  images = D.preprocess(images, cfg.defense_list, cfg)
  return images, labels.astype(np.int32), used, n_prot


def test_images(cfg: EvalConfig, ds: Dataset) -> np.ndarray:
  """Clean test images; converted to grayscale when the victim was trained on grayscale."""
  return D.grayscale(ds.test_images) if "grayscale" in cfg.defense_list else ds.test_images


# ----------------------------------------------------------------------------- jitted steps
def victim_step(model, tx, cfg: EvalConfig, state, root, x_u8, y, pos):
  """One victim update: augment, cutout, PGD-AT, mixup/cutmix, SGD. Pure; returns (state, metrics).

  ``pos``: (B,) positions in the training set (seed the per-sample draws).
  """
  keys = K.per_sample(K.stream(jax.random.wrap_key_data(root), K.OUTER, state.step), pos)
  k_aug, k_cut, k_adv = K.split_each(keys, 3)
  x = normalize(x_u8)
  if cfg.augment:
    x = jnp.clip(augment(x, k_aug, cfg.augment_pad, crop_size=cfg.crop_size), -0.5, 0.5)
  else:
    x = model_view(x, cfg.crop_size)
  used = cfg.defense_list
  if "cutout" in used:
    x = D.cutout(x, k_cut, cfg.cutout_size)
  x = train.adversarial_inputs(model, state, x, y, k_adv, radius=cfg.adv_radius / 255,
                               steps=cfg.adv_steps, step_size=cfg.attack_step_size / 255,
                               norm=cfg.adv_norm, unroll=cfg.unroll_loops)
  y2, lam = None, 1.0
  k_batch = K.stream(jax.random.wrap_key_data(root), K.BATCH, state.step)
  if "mixup" in used:
    x, y, y2, lam = D.mixup(x, y, k_batch, cfg.mixup_alpha)
  elif "cutmix" in used:
    x, y, y2, lam = D.cutmix(x, y, k_batch, cfg.cutmix_alpha)
  return train.update(model, tx, state, x, y, y2, lam)


def eval_batch(model, crop_size: int, state, x_u8, y):
  """Eval-mode (prediction, per-sample CE) on clean inputs (centre crops when crop_size > 0)."""
  logits = train.predict(model, state, model_view(normalize(x_u8), crop_size))
  return jnp.argmax(logits, -1), attacks.ce(logits, y)


def _build(model, tx, cfg, mesh):
  rep, bat = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  step = jax.jit(functools.partial(victim_step, model, tx, cfg),
                 in_shardings=(rep, rep, bat, bat, bat), out_shardings=(rep, rep),
                 donate_argnums=(0,))
  evaluate_ = jax.jit(functools.partial(eval_batch, model, cfg.crop_size), in_shardings=(rep, bat, bat),
                      out_shardings=(bat, bat))
  return step, evaluate_


def evaluate_arrays(ev, mesh, state, images, labels, batch_size, num_classes) -> dict:
  """Accuracy, mean CE and per-class accuracy of the eval-mode model on (images, labels)."""
  preds, losses = [], []
  for idx, valid in padded_batches(len(labels), batch_size):
    x, y, _ = sharding.gather_batch(mesh, idx, images, labels)
    p, l = ev(state, x, y)
    preds.append(sharding.to_host(p)[:valid])
    losses.append(sharding.to_host(l)[:valid])
  pred, loss = np.concatenate(preds), np.concatenate(losses)
  correct = pred == labels
  per_class = [float(correct[labels == c].mean()) if (labels == c).any() else None
               for c in range(num_classes)]
  return {"accuracy": float(correct.mean()), "loss": float(loss.mean()),
          "per_class_accuracy": per_class}


# ----------------------------------------------------------------------------- the loop
def evaluate_noise(cfg: EvalConfig, noise_dir: str | None, workdir: str, *,
                   dataset: Dataset | None = None, log: Callable[[str], None] = print,
                   devices=None) -> dict | None:
  """Train a victim on the data protected by ``noise_dir`` (None: clean) into ``workdir``.

  Resumes when ``workdir`` holds this run; returns the results dict, or None when
  it stopped early (stop_after_step or SIGTERM) after saving a checkpoint.
  """
  with StopSignal() as stop:
    return _evaluate(cfg.validate(), noise_dir, workdir, dataset, log, devices, stop)


def _evaluate(cfg, noise_dir, workdir, ds, log, devices, stop):
  lead = jax.process_index() == 0
  say = log if lead else (lambda *_: None)
  ds = ds if ds is not None else dataset_for(cfg)
  if cfg.num_classes and cfg.num_classes != ds.num_classes:
    raise SemJaxError(f"num_classes {cfg.num_classes} does not match the dataset's {ds.num_classes}")
  check_crop(cfg.crop_size, ds.image_shape)
  noise, manifest = load_noise_for(noise_dir, ds) if noise_dir else (None, None)
  mesh = sharding.make_mesh(devices)
  sharding.check_batch(cfg.batch_size, mesh)
  data = data_fingerprint(ds)
  want = {"config": cfg.result_fields(), "data": data,
          "noise": {"dir": os.path.abspath(noise_dir) if noise_dir else None,
                    "sha256": manifest["noise_sha256"] if manifest else None}}
  status, error = -1, ""
  if lead:
    try:
      status = prepare_workdir(workdir, want, (RESULTS_FILE,))
    except SemJaxError as e:
      error = str(e)
  status = sharding.broadcast_from_first(status)
  if status < 0:
    raise SemJaxError(error or "process 0 refused the workdir (see its error)")
  if status == _DONE:
    results = artifacts.read_json(os.path.join(workdir, RESULTS_FILE))
    say(f"{workdir} already holds the finished evaluation (clean test accuracy "
        f"{results['final']['test_accuracy']:.4f}); nothing to do")
    return results

  t_start = time.time()
  images, labels, used, n_prot = training_set(cfg, ds, noise)
  if cfg.batch_size > len(labels):
    raise SemJaxError(f"batch_size {cfg.batch_size} exceeds the {len(labels)} training images used")
  x_test = test_images(cfg, ds)
  model = create_model(cfg.model, ds.num_classes, cfg.model_width, cfg.dtype)
  tx = train.make_optimizer(cfg)
  root = K.root_key(cfg.seed)
  root_data = np.asarray(jax.random.key_data(root))
  state = sharding.put_replicated(mesh, train.init_state(model, tx, K.stream(root, K.INIT),
                                                         ds.image_shape))
  fingerprint = run_fingerprint(cfg, {**data, "noise": want["noise"]})
  ckpts = Checkpoints(os.path.join(workdir, CHECKPOINT_DIR), cfg.max_checkpoints)
  target = {"train": state, "root": root_data}
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)
                          if isinstance(a, jax.Array) else a, target)
  start, prior_elapsed, curve = 0, 0.0, []
  found = ckpts.restore_latest(abstract, fingerprint, say)
  if found is not None:
    restored, meta = found
    state = restored["train"]
    start, prior_elapsed = int(state.step), float(meta.get("elapsed_s", 0.0))
    curve = [c for c in meta.get("curve", []) if c["step"] <= start]
    say(f"resuming {workdir} from checkpoint step {start}")
  root_r = sharding.put_replicated(mesh, root_data)
  step_fn, ev = _build(model, tx, cfg, mesh)
  metrics_out = (artifacts.MetricsWriter(os.path.join(workdir, artifacts.METRICS_FILE),
                                         truncate_after_step=start) if lead else None)

  def save(step: int) -> None:
    ckpts.save(step, {"train": state, "root": root_data},
               {"fingerprint": fingerprint, "step": step, "curve": curve,
                "elapsed_s": prior_elapsed + time.time() - t_start})

  n_used = len(labels)
  what = (f"noise {manifest['method']} from {noise_dir}" if manifest else "clean data")
  say(f"evaluate: victim {cfg.model} on {ds.name} ({what}; {n_prot}/{ds.num_train} images "
      f"protected, {n_used} used{', defenses ' + cfg.defenses if cfg.defense_list else ''}), "
      f"PGD-AT ρa {cfg.adv_radius:g} ({cfg.adv_norm}), batch {cfg.batch_size} over "
      f"{mesh.devices.size} device(s), steps {start}->{cfg.train_steps}")
  stop_at = cfg.stop_after_step if 0 < cfg.stop_after_step < cfg.train_steps else cfg.train_steps
  step, preempted = start, False
  window = Throughput()
  while step < stop_at:
    pos = batch_indices(cfg.seed, step, n_used, cfg.batch_size)
    x, y, p = sharding.gather_batch(mesh, pos, images, labels)
    state, m = step_fn(state, root_r, x, y, p)
    step += 1
    window.step()
    if step % cfg.eval_every == 0 or step == cfg.train_steps:
      res = evaluate_arrays(ev, mesh, state, x_test, ds.test_labels, cfg.batch_size, ds.num_classes)
      curve.append({"step": step, "test_accuracy": res["accuracy"], "test_loss": res["loss"]})
      if metrics_out:
        metrics_out.write({"step": step, "event": "eval", "test_accuracy": res["accuracy"],
                           "test_loss": res["loss"]})
      say(f"step {step}: clean test accuracy {res['accuracy']:.4f}, loss {res['loss']:.4f}")
    if step % cfg.log_every == 0 or step == stop_at:
      m = {k: float(v) for k, v in m.items()}
      if not math.isfinite(m["loss"]):
        raise SemJaxError(f"victim loss became {m['loss']} at step {step}; lower learning_rate")
      rate, eta, now = window.report(cfg.train_steps - step)
      say(f"step {step}/{cfg.train_steps}  loss {m['loss']:.4f}  acc {m['accuracy']:.3f}  "
          f"{rate:.2f} steps/s  {rate * cfg.batch_size:.0f} img/s  ETA {_fmt_time(eta)}")
      if metrics_out:
        metrics_out.write({"step": step, "train_loss": m["loss"], "train_batch_accuracy":
                           m["accuracy"], "steps_per_s": rate, "eta_s": eta,
                           "elapsed_s": prior_elapsed + now - t_start})
    preempted = step_boundary(step, stop_at, cfg.checkpoint_every, stop, save)
    if preempted:
      break
  if stopped_early(step, cfg.train_steps, preempted, ckpts, say):
    return None

  final = evaluate_arrays(ev, mesh, state, x_test, ds.test_labels, cfg.batch_size, ds.num_classes)
  train_res = evaluate_arrays(ev, mesh, state, images, labels, cfg.batch_size, ds.num_classes)
  ckpts.close()
  wall = prior_elapsed + time.time() - t_start
  results = None
  if lead:
    results = {
        "config": cfg.to_dict(), "seed": cfg.seed,
        "noise": {"dir": want["noise"]["dir"], "sha256": want["noise"]["sha256"],
                  "method": manifest["method"] if manifest else "clean"},
        "dataset": {"name": ds.name, "num_train": ds.num_train, "num_test": len(ds.test_labels),
                    "num_classes": ds.num_classes, "image_shape": list(ds.image_shape),
                    "sha256": data["sha256"]},
        "fingerprint": fingerprint,
        "num_train_used": n_used, "num_protected": n_prot,
        "final": {"step": cfg.train_steps, "test_accuracy": final["accuracy"],
                  "test_loss": final["loss"], "per_class_test_accuracy": final["per_class_accuracy"],
                  "train_accuracy": train_res["accuracy"], "train_loss": train_res["loss"]},
        "curve": curve,
        "model_checkpoint": os.path.join(CHECKPOINT_DIR, str(cfg.train_steps)),
        "wall_time_s": wall, "device_count": int(mesh.devices.size),
        "process_count": jax.process_count(), "device_kind": jax.devices()[0].device_kind,
        "sem_jax_version": sem_jax.__version__, "jax_version": jax.__version__,
    }
    metrics_out.write({"event": "final", "step": cfg.train_steps,
                       "test_accuracy": final["accuracy"], "train_accuracy": train_res["accuracy"],
                       "wall_time_s": wall})
    plot_curve(curve, os.path.join(workdir, PLOT_FILE), f"{cfg.model} on {ds.name}: {what}")
    artifacts.write_json(os.path.join(workdir, RESULTS_FILE), results)
  sharding.sync("sem_jax_evaluate_done")
  if not lead:
    results = artifacts.read_json(os.path.join(workdir, RESULTS_FILE))
  say(f"done in {_fmt_time(wall)}: clean test accuracy {final['accuracy']:.4f} "
      f"(train accuracy {train_res['accuracy']:.4f}) -> {workdir}/{RESULTS_FILE}")
  return results


def plot_curve(curve: list[dict], path: str, title: str) -> None:
  """accuracy.png: clean test accuracy over training steps."""
  artifacts.line_plot(path, [(None, [c["step"] for c in curve], [c["test_accuracy"] for c in curve],
                              "-")], xlabel="victim training step", ylabel="clean test accuracy",
                      ylim=(0, 1), title=title)


# ----------------------------------------------------------------------------- the saved model
def load_victim(workdir: str, devices=None):
  """(model, TrainState, EvalConfig, results) of a finished evaluate run (e.g. for TAP).

  The state is restored from the final checkpoint (integrity-checked) and replicated.
  """
  from sem_jax.config import from_dict
  rpath = os.path.join(workdir, RESULTS_FILE)
  if not os.path.exists(rpath):
    raise SemJaxError(f"{workdir} holds no finished evaluate run ({RESULTS_FILE} missing)")
  results = artifacts.read_json(rpath)
  cfg = from_dict(results["config"], EvalConfig)
  model = create_model(cfg.model, results["dataset"]["num_classes"], cfg.model_width, cfg.dtype)
  tx = train.make_optimizer(cfg)
  rep = sharding.replicated(sharding.make_mesh(devices))
  state = jax.eval_shape(lambda: train.init_state(model, tx, K.stream(K.root_key(cfg.seed), K.INIT),
                                                  tuple(results["dataset"]["image_shape"])))
  root = np.asarray(jax.random.key_data(K.root_key(cfg.seed)))
  abstract = {"train": jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep),
                                    state), "root": root}
  ckpts = Checkpoints(os.path.join(workdir, CHECKPOINT_DIR), cfg.max_checkpoints)
  try:
    found = ckpts.restore_latest(abstract, results["fingerprint"], lambda *_: None)
  finally:
    ckpts.close()
  if found is None or int(found[0]["train"].step) != cfg.train_steps:
    raise SemJaxError(f"{workdir} has no intact final model checkpoint (step {cfg.train_steps})")
  return model, found[0]["train"], cfg, results


def model_digest(workdir: str) -> str:
  """SHA-256 of the final checkpoint's integrity record: identifies the saved model."""
  rpath = os.path.join(workdir, RESULTS_FILE)
  results = artifacts.read_json(rpath)
  path = os.path.join(workdir, results["model_checkpoint"], INTEGRITY_FILE)
  if not os.path.exists(path):
    raise SemJaxError(f"{workdir}: the final model checkpoint is missing ({path})")
  return artifacts.sha256_file(path)
