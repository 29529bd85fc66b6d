"""``evaluate``: does the noise protect? Train a fresh victim on the protected training set and
test it on the CLEAN test set (docs/method.md, "Evaluation protocol").

The victim sees ``clip(uint8 image + int8 noise)`` (only on the protected subset
of indices), then the thief's preprocessing defenses, then, per batch, its own
flip + crop augmentation, cutout, PGD adversarial training at ρa, and mixup or
cutmix. Everything is keyed by (seed, step, position), so a run resumes from its
orbax checkpoint to the bit-identical model. The final checkpoint is kept: it is
the "normally trained model" that TAP attacks (`sem_jax.run.victim`).

Outputs in the workdir: ``results.json`` (final and per-evaluation clean test
accuracy and loss, per-class accuracy, train accuracy, config, seed, wall time),
``accuracy.png`` and ``metrics.jsonl``.
"""
from __future__ import annotations

import os
from typing import Callable

import jax
import numpy as np

import sem_jax
from sem_jax.core.thief import defenses as D
from sem_jax.data import rows as R
from sem_jax.data.dataset import Dataset, check_crop, fingerprint
from sem_jax.data.order import batch_indices, padded_batches, protected_indices
from sem_jax.errors import SemJaxError
from sem_jax.files import fs
from sem_jax.run import build, identity as run_identity, loop, machine, sharding
from sem_jax.run.artifacts import FinishedRun, load_run
from sem_jax.run.checkpoint import CHECKPOINT_DIR, verify_step_dir
from sem_jax.run.config import EvalConfig
from sem_jax.run.inputs import dataset_for
from sem_jax.run.plots import line_plot
from sem_jax.run.purify import eclipse, eclipse_clean_rows, purify
from sem_jax.run.specs import preprocess, victim_spec
from sem_jax.run.steps import victim_steps
from sem_jax.run.victim import RESULTS_FILE

PLOT_FILE = "accuracy.png"


# ----------------------------------------------------------------------------- inputs
MATERIALIZE_BYTES = 1 << 30   # a victim's training set up to 1 GiB is computed once into memory


def _rows_used(cfg: EvalConfig, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
  """(the protected dataset indices, the indices the victim trains on)."""
  prot = protected_indices(cfg.seed, ds.num_train, cfg.protected_fraction)
  used = ds.fit_indices
  if cfg.unprotected_only:
    used = np.setdiff1d(used, prot)
  return prot, used


def training_set(cfg: EvalConfig, ds: Dataset, noise, materialize_bytes: int = MATERIALIZE_BYTES,
                 log: Callable[[str], None] = print, stop: Callable[[], bool] = lambda: False):
  """The images the victim trains on: (uint8 row table, labels, dataset indices, #protected);
  None when ``stop()`` ended the D-VAE purification (SIGTERM: nothing to checkpoint).

  Rows: every training row but a folder dataset's holdout (its test split), less the
  protected ones with ``unprotected_only``; the protected subset carries the noise, then
  the preprocessing defenses apply, then D-VAE purification (``dvae``), then ECLIPSE's
  (``eclipse``, its denoiser trained on ``eclipse_clean`` clean test images). The table is lazy (``rows.Protected``: computed per
  batch from the clean images and the noise, both possibly memory-mapped, so the
  training set is never held twice) unless it fits ``materialize_bytes``, when it is
  computed once, a block at a time.
  """
  n = ds.num_train
  prot, used = _rows_used(cfg, ds)
  mask, n_prot = None, 0
  noisy = noise is not None and len(prot) > 0 and not cfg.unprotected_only
  if noisy:
    mask = np.zeros(n, bool)
    mask[prot] = True
    n_prot = int(mask[used].sum())
  table = R.Protected(ds.train_images, noise if noisy else None, mask, preprocess(cfg))
  if len(used) != n:
    table = R.Subset(table, used)
  if "dvae" in cfg.defense_list:      # trained on, and replacing, the whole published set
    table = purify(R.materialize(table), cfg, log, stop)
    if table is None:
      return None
  if "eclipse" in cfg.defense_list:   # trained on a few clean test images, then the same
    clean = np.asarray(ds.test_images)[eclipse_clean_rows(cfg, len(ds.test_labels))]
    table = eclipse(R.materialize(table), clean, cfg, log, stop)
    if table is None:
      return None
  if not isinstance(table, np.ndarray) and table.nbytes <= materialize_bytes:
    table = R.materialize(table)
  return table, np.asarray(ds.train_labels)[used].astype(np.int32), used, n_prot


def test_images(cfg: EvalConfig, ds: Dataset) -> np.ndarray:
  """Clean test images as the victim sees them ([`sem_jax.core.thief.defenses.test_view`][sem_jax.core.thief.defenses.test_view])."""
  return D.test_view(ds.test_images, cfg.defense_list, standardize_mean=cfg.standardize_mean,
                     standardize_std=cfg.standardize_std)


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
  mesh = sharding.make_mesh(devices)
  n_used = len(_rows_used(cfg, ds)[1])
  if n_used:   # before the workdir is claimed; the run records the batch it trains on
    cfg = build.fit_batch(cfg, n_used, mesh, log, " the victim trains on")
  source = (load_run(noise_dir, ds, "generate run", " (use --noise none for clean data)")
            if noise_dir else None)
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
                accept=run_identity.accepted_fingerprints(cfg.result_fields(), inputs)) as run:
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
  chosen = training_set(cfg, ds, source.noise if source else None, log=run.say,
                        stop=run.stop_requested)
  if chosen is None:
    run.say("stopped before the victim's training (SIGTERM received); re-run the same command "
            "to resume")
    return None
  images, labels, _, n_prot = chosen
  x_test = test_images(cfg, ds)
  model, tx, state = build.model_and_state(cfg, ds.num_classes, ds.image_shape, mesh)
  root_data = build.root_key_data(cfg.seed)
  found = run.restore({"train": state, "root": root_data})
  start, curve = 0, []
  if found is not None:
    state, start = found[0]["train"], found[1]
    curve = [c for c in run.meta.get("curve", []) if c["step"] <= start]
  root = sharding.put_replicated(mesh, root_data)
  step_fn, ev = victim_steps(model, tx, victim_spec(cfg), mesh)
  n_used = len(labels)
  what = (f"noise {source.manifest.method} from {source.manifest.workdir}" if source
          else "clean data")
  run.say(f"evaluate: victim {cfg.model} on {ds.name} ({what}; {n_prot}/{ds.num_train} images "
          f"protected, {n_used} used{', defenses ' + cfg.defenses if cfg.defense_list else ''}), "
          f"PGD-AT ρa {cfg.adv_radius:g} ({cfg.adv_norm}), batch {cfg.batch_size} over "
          f"{mesh.devices.size} device(s), steps {start}->{cfg.train_steps}")

  def one_step(state_, step):
    pos = batch_indices(cfg.seed, step, n_used, cfg.batch_size)
    return step_fn(state_, root, sharding.read_batch(mesh, pos, images, labels), step)

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

  def record() -> dict:
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
        "model_checkpoint": os.path.join(CHECKPOINT_DIR, str(cfg.train_steps)),
        "wall_time_s": wall, "device_count": int(mesh.devices.size),
        "process_count": jax.process_count(), "device_kind": jax.devices()[0].device_kind,
        "machine": machine.describe(),
        "sem_jax_version": sem_jax.__version__, "jax_version": jax.__version__,
    }

  results = run.publish(record, "sem_jax_evaluate_done")
  run.say(f"done in {loop.fmt_time(wall)}: clean test accuracy {final['accuracy']:.4f} "
          f"(train accuracy {train_res['accuracy']:.4f}) -> {run.workdir}/{RESULTS_FILE}")
  return results


def plot_curve(curve: list[dict], path: str, title: str) -> None:
  """accuracy.png: clean test accuracy over training steps."""
  line_plot(path, [(None, [c["step"] for c in curve], [c["test_accuracy"] for c in curve],
                              "-")], xlabel="victim training step", ylabel="clean test accuracy",
                      ylim=(0, 1), title=title)
