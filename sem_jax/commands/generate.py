"""``generate``: alternate crafting and surrogate updates, then regenerate the noise of every
training index with the final surrogate (docs/method.md, "The noise generators").

Read top-down: [`generate_noise`][generate_noise] claims the workdir, builds the surrogate
(`sem_jax.run.build`) and the jitted steps (`sem_jax.run.steps`), runs the outer
loop in the shared scaffold (`sem_jax.run.loop`), the final pass, and writes the
artifacts (`sem_jax.run.artifacts`).

The int8 noise table lives on the devices, its rows sharded over the ``data`` axis
(never replicated), padded to a multiple of the global batch so that every device
count that divides the batch can hold it: a checkpoint written on N devices resumes on M.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.core.crafting.methods import METHODS
from sem_jax.core.units import whole_levels
from sem_jax.data import rows as R
from sem_jax.data.dataset import Dataset, check_crop, fingerprint
from sem_jax.data.order import batch_indices, padded_batches, padded_rows
from sem_jax.errors import SemJaxError
from sem_jax.run import build, identity as run_identity, loop, machine, sharding
from sem_jax.run.artifacts import (MANIFEST_FILE, Manifest, finished_manifest, manifest_record,
                                   write_noise_table)
from sem_jax.run.config import GenerateConfig
from sem_jax.run.inputs import dataset_for
from sem_jax.run.specs import gen_spec
from sem_jax.run.steps import Steps, generation_steps
from sem_jax.run.victim import load_victim, model_digest


def generate_noise(cfg: GenerateConfig, workdir: str, *, dataset: Dataset | None = None,
                   log: Callable[[str], None] = print, devices=None) -> dict | None:
  """Generate defensive noise for ``cfg`` into ``workdir`` (resuming if it holds this run).

  Every process of a multi-process run calls this with the same arguments.
  Returns the manifest dict when the run is complete, or None when it stopped
  early (``cfg.stop_after_step`` or SIGTERM) after saving a checkpoint; re-run
  the same command to resume.
  """
  cfg = cfg.validate()
  ds = dataset if dataset is not None else dataset_for(cfg)
  mesh = sharding.make_mesh(devices)
  if METHODS[cfg.method].kind != "craft":   # lsp, ar, ops, cuda, entf, ntga, dc, gue
    from sem_jax.commands import attacks
    return attacks.generate_other(cfg, workdir, ds, mesh, log)
  cfg = _check_fits(cfg, ds, mesh, log)
  sharding.check_batch(cfg.batch_size, mesh)
  data = fingerprint(ds)
  if METHODS[cfg.method].fixed_model:
    data = {**data, "tap_model_sha256": model_digest(cfg.tap_model)}
  # TAP's model is identified by its digest; its path only records where it lay (moved_inputs).
  identity = run_identity.moved_inputs(
      workdir, {"config": cfg.result_fields(), "data": data}, [("config", "tap_model")], log)
  fp = run_identity.run_fingerprint(identity["config"], data)
  with loop.Run(workdir, identity, fp, MANIFEST_FILE, cfg.max_checkpoints, log,
                accept=run_identity.accepted_fingerprints(identity["config"], data)) as run:
    if run.done:
      return finished_manifest(run)
    model, tx, state = _surrogate(cfg, ds, mesh, run.say)
    root_data = build.root_key_data(cfg.seed)
    n_rows = padded_rows(ds.num_train, cfg.batch_size)
    table = jax.jit(lambda: jnp.zeros((n_rows, *ds.image_shape), jnp.int8),
                    out_shardings=sharding.batch_sharded(mesh))()
    state, table, start = _restore_or_init(run, cfg, state, table, root_data)
    root = sharding.put_replicated(mesh, root_data)  # raw key data: replicable across processes
    steps = generation_steps(model, tx, gen_spec(cfg), mesh)
    run.say(f"{cfg.method} on {ds.name}: {ds.num_train} train images {ds.image_shape}, "
            f"{ds.num_classes} classes, model {cfg.model}, batch {cfg.batch_size} over "
            f"{mesh.devices.size} device(s) in {jax.process_count()} process(es), "
            + (f"steps {start}->{cfg.train_steps}" if METHODS[cfg.method].outer_loop
               else "one pass, no surrogate training"))

    fit = ds.fit_indices   # every row but a folder dataset's holdout

    def step_fn(carry, step):
      batch = sharding.read_batch(mesh, fit[batch_indices(cfg.seed, step, len(fit),
                                                          cfg.batch_size)],
                                  ds.train_images, ds.train_labels)
      state_, table_, m = steps.outer(*carry, root, batch)
      return (state_, table_), m

    t_loop = time.time()
    (state, table), _, finished = run.loop(
        (state, table), start, loop.Schedule.of(cfg), step_fn,
        lambda c: ({"train": c[0], "noise": c[1], "root": root_data}, {"noise_rows": n_rows}),
        what="surrogate", record=lambda s, m: {"step": s, **m, "lr": _lr(cfg, s)},
        extra=lambda m: f"|noise| {m['noise_abs_mean']:.2f}  ")
    if not finished:
      return None
    return _finish(run, cfg, ds, mesh, steps, state, table, root, data,
                   time.time() - t_loop)


def _check_fits(cfg: GenerateConfig, ds: Dataset, mesh, log) -> GenerateConfig:
  """``cfg`` checked against the dataset, its batch fitted to a small training set (logged; the
  run records the batch it trained on). Runs before the workdir is claimed."""
  if cfg.num_classes and cfg.num_classes != ds.num_classes:
    raise SemJaxError(f"num_classes {cfg.num_classes} does not match the dataset's {ds.num_classes}")
  check_crop(cfg.crop_size, ds.image_shape)
  return build.fit_batch(cfg, len(ds.fit_indices), mesh, log)


def _lr(cfg, step: int) -> float:
  """The learning rate that step ``step`` (1-based) used: the staircase schedule."""
  return cfg.learning_rate * cfg.lr_decay_factor ** ((step - 1) // cfg.lr_decay_every)


def _surrogate(cfg: GenerateConfig, ds: Dataset, mesh, say):
  """(model, optimizer, replicated initial state); tap, hypo: the fixed model of ``tap_model``."""
  model, tx, state = build.model_and_state(cfg, ds.num_classes, ds.image_shape, mesh)
  if METHODS[cfg.method].fixed_model:
    model, state = _tap_model(cfg, ds, mesh, say)
  return model, tx, state


def _tap_model(cfg: GenerateConfig, ds: Dataset, mesh, say):
  """The fixed model of TAP and hypo: the final victim of the evaluate run in ``cfg.tap_model``."""
  model, state, ecfg, results = load_victim(cfg.tap_model, list(mesh.devices.flat), for_data=ds)
  if ecfg.adv_radius > 0:
    say(f"note: tap_model was adversarially trained (ρa {ecfg.adv_radius:g}); {cfg.method}'s "
        "paper setting uses a normally trained model")
  target = (f"target class (y + 1) mod {ds.num_classes}" if cfg.method == "tap"
            else "descending the true label's cross-entropy")
  say(f"{cfg.method}: fixed {ecfg.model} from {cfg.tap_model} (clean test accuracy "
      f"{results['final']['test_accuracy']:.4f}), {target}")
  return model, state


def _restore_or_init(run: loop.Run, cfg: GenerateConfig, state, table, root_data):
  """(state, table, start step): from the newest intact checkpoint, or as given at step 0.
  One-pass methods (tap, hypo, random) have no loop: they start at train_steps."""
  if not METHODS[cfg.method].outer_loop:
    run.start_without_checkpoints(cfg.train_steps)
    return state, table, cfg.train_steps
  found = run.restore({"train": state, "noise": table, "root": root_data})
  if found is None:
    return state, table, 0
  tree, start = found
  if not np.array_equal(np.asarray(tree["root"]), root_data):
    raise SemJaxError(f"checkpoint step {start} was written with another seed")
  return tree["train"], tree["noise"], start


def final_pass(steps: Steps, mesh, state, table, root, ds: Dataset, batch_size: int,
               log: Callable[[str], None] = print):
  """Regenerate the noise of EVERY training index exactly once, in dataset order.

  Returns (table, written): ``written`` (N,) is the device-side count of writes per
  index, checked here to be all ones.
  """
  num = ds.num_train
  acc = {"table": table,
         "written": jax.device_put(np.zeros(table.shape[0], np.int32),
                                   sharding.batch_sharded(mesh))}
  t0 = time.time()
  nb = math.ceil(num / batch_size)
  for b, (idx, valid) in enumerate(padded_batches(num, batch_size)):
    batch = sharding.read_batch(mesh, idx, ds.train_images, ds.train_labels, valid)
    acc = steps.final(state, acc, root, batch)
    if loop.itstime(b + 1, max(1, nb // 5), nb):
      jax.block_until_ready(acc["written"])
      done = min((b + 1) * batch_size, num)
      log(f"final pass: {done}/{num} images, {done / (time.time() - t0):.1f} img/s")
  counts = sharding.to_host(acc["written"])[:num]
  if not (counts == 1).all():
    raise RuntimeError(f"final pass wrote {int((counts == 1).sum())} of {num} indices exactly once")
  return acc["table"], counts


def accuracy(steps: Steps, mesh, state, images: np.ndarray, labels: np.ndarray,
             batch_size: int, root=None) -> float:
  """Accuracy of the eval-mode model on (images, labels): clean, or with ``root`` (the run's
  key data) under the surrogate's own PGD-AT attack."""
  correct = 0
  for idx, valid in padded_batches(len(labels), batch_size):
    batch = sharding.read_batch(mesh, idx, images, labels, valid)
    n = steps.correct(state, batch) if root is None else steps.robust(state, root, batch)
    correct += int(n)
  return correct / len(labels)


def _finish(run: loop.Run, cfg, ds, mesh, steps, state, table, root, data, loop_s) -> dict:
  """Final pass, surrogate accuracy, noise table and manifest (written last)."""
  run.say(f"final pass: regenerating noise for all {ds.num_train} training images")
  t_final = time.time()
  table, written = final_pass(steps, mesh, state, table, root, ds, cfg.batch_size, run.say)
  final_s = time.time() - t_final
  test_acc = train_acc = robust_acc = None
  if METHODS[cfg.method].descends:
    test_acc = accuracy(steps, mesh, state, ds.test_images, ds.test_labels, cfg.batch_size)
    images, labels = ds.train_images, ds.train_labels
    if ds.holdout is not None:   # lazily: no copy of the training set
      images, labels = R.Subset(images, ds.fit_indices), labels[ds.fit_indices]
    train_acc = accuracy(steps, mesh, state, images, labels, cfg.batch_size)
  if cfg.trains_robust_surrogate:
    robust_acc = accuracy(steps, mesh, state, ds.test_images, ds.test_labels, cfg.batch_size, root)
  run.close_checkpoints()
  stored = write_noise_table(run.workdir, table, ds.num_train, whole_levels(cfg.noise_radius),
                             cfg.noise_format)
  noise_shape = (ds.num_train, *ds.image_shape)
  wall = run.elapsed()

  def record() -> dict:
    run.write_metrics({"event": "final", "step": cfg.train_steps, "test_accuracy": test_acc,
                       "train_accuracy": train_acc, "wall_time_s": wall})
    return manifest_record(
        cfg.method, cfg, ds, data["sha256"], stored,
        final_pass_regenerated=int(written.sum()), final_pass_s=final_s,
        surrogate_clean_test_accuracy=test_acc, surrogate_clean_train_accuracy=train_acc,
        surrogate_robust_test_accuracy=robust_acc,   # under its own PGD-AT attack (ρa)
        jax_version=jax.__version__, device_count=int(mesh.devices.size),
        process_count=jax.process_count(), device_kind=jax.devices()[0].device_kind,
        machine=machine.describe(),
        wall_time_s=wall, loop_s_this_session=loop_s)

  manifest = run.publish(record, "sem_jax_generate_done")
  shards = (f", {len(manifest.get('noise_shards', []))} shards"
            if cfg.noise_format == "shards" else "")
  run.say(f"done in {loop.fmt_time(wall)}: noise {noise_shape} int8 "
          f"({math.prod(noise_shape) / 2**20:.1f} MiB{shards}), "
          f"max |noise| {manifest['noise_max_abs']} levels, {int(written.sum())}/{ds.num_train} "
          f"regenerated" + (f", surrogate clean test acc {test_acc:.4f}" if test_acc is not None
                              else "") + f" -> {run.workdir}")
  return manifest
