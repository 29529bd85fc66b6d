"""Does the noise protect? Train a fresh victim on the protected training set and test it on
the CLEAN test set (SPEC section 6).

The victim sees ``clip(uint8 image + int8 noise)`` (only on the protected subset
of indices), then the thief's preprocessing defenses, then, per batch, its own
flip + crop augmentation, cutout, PGD adversarial training at ρa, and mixup or
cutmix. Everything is keyed by (seed, step, position), so a run resumes from its
orbax checkpoint to the bit-identical model. The final checkpoint is kept: it is
the "normally trained model" that TAP attacks (``sem_jax.victim``).

Outputs in the workdir: ``results.json`` (final and per-evaluation clean test
accuracy and loss, per-class accuracy, train accuracy, config, seed, wall time),
``accuracy.png`` and ``metrics.jsonl``.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import sem_jax
from sem_jax import (artifacts, attacks, defenses as D, fs, keys as K, loop, rows as R,
                     run_identity, sharding, train)
from sem_jax.augment import model_view, train_view
from sem_jax.checkpoint import verify_step_dir
from sem_jax.config import EvalConfig
from sem_jax.data import Dataset, check_crop, fingerprint, normalize
from sem_jax.datasets import dataset_for
from sem_jax.errors import SemJaxError
from sem_jax.manifest import FinishedRun, load_run
from sem_jax.models import create_model
from sem_jax.pipeline import batch_indices, padded_batches, protected_indices
from sem_jax.victim import RESULTS_FILE
from sem_jax.runtime import loops_unrolled

PLOT_FILE = "accuracy.png"


# ----------------------------------------------------------------------------- inputs
MATERIALIZE_BYTES = 1 << 30   # a victim's training set up to 1 GiB is computed once into memory


def training_set(cfg: EvalConfig, ds: Dataset, noise, materialize_bytes: int = MATERIALIZE_BYTES):
  """The images the victim trains on: (uint8 row table, labels, dataset indices, #protected).

  Rows: every training row but a folder dataset's holdout (its test split), less the
  protected ones with ``unprotected_only``; the protected subset carries the noise, then
  the preprocessing defenses apply. The table is lazy (``rows.Protected``: computed per
  batch from the clean images and the noise, both possibly memory-mapped, so the
  training set is never held twice) unless it fits ``materialize_bytes``, when it is
  computed once, a block at a time.
  """
  n = ds.num_train
  prot = protected_indices(cfg.seed, n, cfg.protected_fraction)
  used = ds.fit_indices
  if cfg.unprotected_only:
    used = np.setdiff1d(used, prot)
  mask, n_prot = None, 0
  noisy = noise is not None and len(prot) > 0 and not cfg.unprotected_only
  if noisy:
    mask = np.zeros(n, bool)
    mask[prot] = True
    n_prot = int(mask[used].sum())
  post = None
  if set(cfg.defense_list) & set(D.PREPROCESS):
    post = lambda x: D.preprocess(x, cfg.defense_list, cfg)
  table = R.Protected(ds.train_images, noise if noisy else None, mask, post)
  if len(used) != n:
    table = R.Subset(table, used)
  if table.nbytes <= materialize_bytes:
    table = R.materialize(table)
  return table, np.asarray(ds.train_labels)[used].astype(np.int32), used, n_prot


def test_images(cfg: EvalConfig, ds: Dataset) -> np.ndarray:
  """Clean test images; converted to grayscale when the victim was trained on grayscale."""
  return D.grayscale(ds.test_images) if "grayscale" in cfg.defense_list else ds.test_images


# ----------------------------------------------------------------------------- jitted steps
@dataclasses.dataclass(frozen=True)
class VictimSpec:
  """What the victim's step computes with (static; fractions of [0, 1])."""
  augment_pad: int                    # flip + pad-and-crop padding; < 0: no augmentation
  crop_size: int                      # >0: random-resized crops (train) / centre crops (test)
  attack: attacks.AttackSpec          # PGD-AT (inactive: standard training)
  cutout_size: int = 0                # > 0: cutout of this side, pixels
  mix: Callable | None = None         # mixup / cutmix: (x, y, key) -> (x, y, y2, λ)


def victim_spec(cfg: EvalConfig) -> VictimSpec:
  """The spec of an EvalConfig (pixel levels -> fractions, defenses -> parts)."""
  used = cfg.defense_list
  mix = (functools.partial(D.mixup, alpha=cfg.mixup_alpha) if "mixup" in used else
         functools.partial(D.cutmix, alpha=cfg.cutmix_alpha) if "cutmix" in used else None)
  return VictimSpec(
      cfg.augment_pad if cfg.augment else -1, cfg.crop_size,
      attacks.AttackSpec.from_levels(cfg.adv_radius, cfg.adv_steps, cfg.attack_step_size,
                                     cfg.adv_norm, loops_unrolled(cfg.unroll_loops)),
      cfg.cutout_size if "cutout" in used else 0, mix)


def victim_step(model, tx, spec: VictimSpec, state, root, batch):
  """One victim update: augment, cutout, PGD-AT, mixup/cutmix, SGD. Pure; returns (state, metrics).

  ``batch`` = {x: uint8 images, y: labels, idx: positions in the training set (they seed
  the per-sample draws)}.
  """
  y = batch["y"]
  keys = K.per_sample(K.stream(jax.random.wrap_key_data(root), K.OUTER, state.step), batch["idx"])
  k_aug, k_cut, k_adv = K.split_each(keys, 3)
  x = train_view(normalize(batch["x"]), k_aug, spec.augment_pad, spec.crop_size)
  if spec.cutout_size:
    x = D.cutout(x, k_cut, spec.cutout_size)
  x = train.adversarial_inputs(model, state, x, y, k_adv, spec.attack)
  y2, lam = None, 1.0
  if spec.mix is not None:
    x, y, y2, lam = spec.mix(x, y, K.stream(jax.random.wrap_key_data(root), K.BATCH, state.step))
  return train.update(model, tx, state, x, y, y2, lam,
                      K.stream(jax.random.wrap_key_data(root), K.DROPOUT, state.step))


def eval_batch(model, crop_size: int, state, batch):
  """Eval-mode (prediction, per-sample CE) on clean inputs (centre crops when crop_size > 0)."""
  logits = train.predict(model, state, model_view(normalize(batch["x"]), crop_size))
  return jnp.argmax(logits, -1), attacks.ce(logits, batch["y"])


def _build(model, tx, spec: VictimSpec, mesh):
  rep, bat = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  step = jax.jit(functools.partial(victim_step, model, tx, spec), in_shardings=(rep, rep, bat),
                 out_shardings=(rep, rep), donate_argnums=(0,))
  evaluate_ = jax.jit(functools.partial(eval_batch, model, spec.crop_size),
                      in_shardings=(rep, bat), out_shardings=(bat, bat))
  return step, evaluate_


def evaluate_arrays(ev, mesh, state, images, labels, batch_size, num_classes) -> dict:
  """Accuracy, mean CE and per-class accuracy of the eval-mode model on (images, labels)."""
  preds, losses = [], []
  for idx, valid in padded_batches(len(labels), batch_size):
    p, l = ev(state, sharding.read_batch(mesh, idx, images, labels))
    preds.append(sharding.to_host(p)[:valid])
    losses.append(sharding.to_host(l)[:valid])
  pred, loss = np.concatenate(preds), np.concatenate(losses)
  correct = pred == labels
  per_class = [float(correct[labels == c].mean()) if (labels == c).any() else None
               for c in range(num_classes)]
  return {"accuracy": float(correct.mean()), "loss": float(loss.mean()),
          "per_class_accuracy": per_class}


# ----------------------------------------------------------------------------- the run
def evaluate_noise(cfg: EvalConfig, noise_dir: str | None, workdir: str, *,
                   dataset: Dataset | None = None, log: Callable[[str], None] = print,
                   devices=None) -> dict | None:
  """Train a victim on the data protected by ``noise_dir`` (None: clean) into ``workdir``.

  Resumes when ``workdir`` holds this run; returns the results dict, or None when
  it stopped early (stop_after_step or SIGTERM) after saving a checkpoint.
  """
  cfg = cfg.validate()
  ds = dataset if dataset is not None else dataset_for(cfg)
  if cfg.num_classes and cfg.num_classes != ds.num_classes:
    raise SemJaxError(f"num_classes {cfg.num_classes} does not match the dataset's {ds.num_classes}")
  check_crop(cfg.crop_size, ds.image_shape)
  source = (load_run(noise_dir, ds, "generate run", " (use --noise none for clean data)")
            if noise_dir else None)
  mesh = sharding.make_mesh(devices)
  sharding.check_batch(cfg.batch_size, mesh)
  data = fingerprint(ds)
  noise_id = {"dir": fs.abspath(noise_dir) if noise_dir else None,
              "sha256": source.manifest.noise_sha256 if source else None}
  # The noise is identified by its sha256; its path only records where it lay (moved_inputs).
  identity = run_identity.moved_inputs(
      workdir, {"config": cfg.result_fields(), "data": data, "noise": noise_id},
      [("noise", "dir")], log)
  inputs = {**data, "noise": identity["noise"]}
  fp = run_identity.run_fingerprint(cfg.result_fields(), inputs)
  with loop.Run(workdir, identity, fp, RESULTS_FILE, cfg.max_checkpoints, log,
                accept=run_identity.legacy_fingerprints(cfg.result_fields(), inputs)) as run:
    if run.done:
      results = run.finished_result(lambda r: _check_victim(workdir, r))
      run.say(f"{workdir} already holds the finished evaluation (clean test accuracy "
              f"{results['final']['test_accuracy']:.4f}); nothing to do")
      return results
    return _train_victim(run, cfg, ds, mesh, source, data, noise_id)


def _check_victim(workdir: str, results: dict) -> None:
  """A finished victim's final model (what TAP loads) is there and intact."""
  where = os.path.join(workdir, results.get("model_checkpoint", ""))
  problem = verify_step_dir(where) if results.get("model_checkpoint") else "names no model"
  if problem:
    raise SemJaxError(f"its final model checkpoint {problem}")


def _train_victim(run: loop.Run, cfg: EvalConfig, ds: Dataset, mesh, source: FinishedRun | None,
                  data: dict, noise_id: dict) -> dict | None:
  images, labels, _, n_prot = training_set(cfg, ds, source.noise if source else None)
  if cfg.batch_size > len(labels):
    raise SemJaxError(f"batch_size {cfg.batch_size} exceeds the {len(labels)} training images used")
  x_test = test_images(cfg, ds)
  model = create_model(cfg.model, ds.num_classes, cfg.model_width, cfg.dtype, cfg.model_init)
  tx = train.make_optimizer(cfg)
  root_data = np.asarray(jax.random.key_data(K.root_key(cfg.seed)))
  state = sharding.put_replicated(mesh, train.init_state(
      model, tx, K.stream(K.root_key(cfg.seed), K.INIT), ds.image_shape))
  found = run.restore({"train": state, "root": root_data})
  start, curve = 0, []
  if found is not None:
    state, start = found[0]["train"], found[1]
    curve = [c for c in run.meta.get("curve", []) if c["step"] <= start]
  root = sharding.put_replicated(mesh, root_data)
  step_fn, ev = _build(model, tx, victim_spec(cfg), mesh)
  n_used = len(labels)
  what = (f"noise {source.manifest.method} from {source.manifest.workdir}" if source
          else "clean data")
  run.say(f"evaluate: victim {cfg.model} on {ds.name} ({what}; {n_prot}/{ds.num_train} images "
          f"protected, {n_used} used{', defenses ' + cfg.defenses if cfg.defense_list else ''}), "
          f"PGD-AT ρa {cfg.adv_radius:g} ({cfg.adv_norm}), batch {cfg.batch_size} over "
          f"{mesh.devices.size} device(s), steps {start}->{cfg.train_steps}")

  def one_step(state_, step):
    pos = batch_indices(cfg.seed, step, n_used, cfg.batch_size)
    return step_fn(state_, root, sharding.read_batch(mesh, pos, images, labels))

  def test(state_, step):
    res = evaluate_arrays(ev, mesh, state_, x_test, ds.test_labels, cfg.batch_size, ds.num_classes)
    curve.append({"step": step, "test_accuracy": res["accuracy"], "test_loss": res["loss"]})
    run.write_metrics({"step": step, "event": "eval", "test_accuracy": res["accuracy"],
                       "test_loss": res["loss"]})
    run.say(f"step {step}: clean test accuracy {res['accuracy']:.4f}, loss {res['loss']:.4f}")

  state, _, finished = run.loop(
      state, start, loop.Schedule.of(cfg), one_step,
      lambda s: ({"train": s, "root": root_data}, {"curve": curve}), what="victim",
      record=lambda s, m: {"step": s, "train_loss": m["loss"], "train_batch_accuracy":
                           m["accuracy"]},
      hooks=[(cfg.eval_every, test)])
  if not finished:
    return None
  final = evaluate_arrays(ev, mesh, state, x_test, ds.test_labels, cfg.batch_size, ds.num_classes)
  train_res = evaluate_arrays(ev, mesh, state, images, labels, cfg.batch_size, ds.num_classes)
  run.close_checkpoints()
  wall = run.elapsed()

  def build() -> dict:
    run.write_metrics({"event": "final", "step": cfg.train_steps,
                       "test_accuracy": final["accuracy"], "train_accuracy": train_res["accuracy"],
                       "wall_time_s": wall})
    plot_curve(curve, os.path.join(run.workdir, PLOT_FILE), f"{cfg.model} on {ds.name}: {what}")
    return {
        "config": cfg.to_dict(), "seed": cfg.seed,
        "noise": {**noise_id, "method": source.manifest.method if source else "clean"},
        "dataset": {"name": ds.name, "num_train": ds.num_train, "num_test": len(ds.test_labels),
                    "num_classes": ds.num_classes, "image_shape": list(ds.image_shape),
                    "sha256": data["sha256"], "order": ds.order},
        "fingerprint": run.fingerprint, "num_train_used": n_used, "num_protected": n_prot,
        "final": {"step": cfg.train_steps, "test_accuracy": final["accuracy"],
                  "test_loss": final["loss"], "per_class_test_accuracy": final["per_class_accuracy"],
                  "train_accuracy": train_res["accuracy"], "train_loss": train_res["loss"]},
        "curve": curve,
        "model_checkpoint": os.path.join(loop.CHECKPOINT_DIR, str(cfg.train_steps)),
        "wall_time_s": wall, "device_count": int(mesh.devices.size),
        "process_count": jax.process_count(), "device_kind": jax.devices()[0].device_kind,
        "sem_jax_version": sem_jax.__version__, "jax_version": jax.__version__,
    }

  results = run.publish(build, "sem_jax_evaluate_done")
  run.say(f"done in {loop.fmt_time(wall)}: clean test accuracy {final['accuracy']:.4f} "
          f"(train accuracy {train_res['accuracy']:.4f}) -> {run.workdir}/{RESULTS_FILE}")
  return results


def plot_curve(curve: list[dict], path: str, title: str) -> None:
  """accuracy.png: clean test accuracy over training steps."""
  artifacts.line_plot(path, [(None, [c["step"] for c in curve], [c["test_accuracy"] for c in curve],
                              "-")], xlabel="victim training step", ylabel="clean test accuracy",
                      ylim=(0, 1), title=title)
