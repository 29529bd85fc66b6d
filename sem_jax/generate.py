"""The generation loop (SPEC section 4): alternate crafting and surrogate updates,
then regenerate the noise of every training index with the final surrogate.

The loop owns I/O: data order, feeding each process's rows of the batch,
progress lines, metrics.jsonl, orbax checkpoints, SIGTERM and the final
artifacts. The jitted steps are pure functions of (state, noise table, batch).

The int8 noise table lives on the devices, its rows sharded over the ``data``
axis (never replicated), padded to a multiple of the global batch so that every
device count that divides the batch can hold it: a checkpoint written on N
devices resumes on M.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import signal
import threading
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import sem_jax
from sem_jax import artifacts, keys as K, noise as N, sharding, train
from sem_jax.augment import augment, model_view
from sem_jax.checkpoint import Checkpoints
from sem_jax.config import GenerateConfig, diff
from sem_jax.data import Dataset, load_dataset, normalize
from sem_jax.errors import SemJaxError
from sem_jax.models import create_model

CHECKPOINT_DIR = "checkpoints"


# ----------------------------------------------------------------------------- data order
def batch_indices(seed: int, step: int, num: int, batch_size: int) -> np.ndarray:
  """Dataset indices of the batch at ``step``: (B,) int32.

  The data stream is the concatenation of per-epoch permutations of range(num),
  epoch e shuffled by numpy PCG64 seeded with (seed, e). Batches are consecutive
  slices of that stream, so the order is a pure function of (seed, step): the
  data-order state of a checkpoint is its step.
  """
  pos = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
  out = np.empty(batch_size, np.int32)
  for e in np.unique(pos // num):
    perm = epoch_permutation(seed, int(e), num)
    sel = (pos // num) == e
    out[sel] = perm[pos[sel] % num]
  return out


@functools.lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, num: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch, 0x5E3]).permutation(num).astype(np.int32)


# ----------------------------------------------------------------------------- jitted steps
@dataclasses.dataclass(frozen=True)
class Steps:
  """The run's jitted functions, built once per (model, config, mesh)."""
  outer: Callable     # (state, table, root, x_u8, y, idx) -> (state, table, metrics)
  final: Callable     # (state, table, written, root, x_u8, y, idx, valid) -> (table, written)
  correct: Callable   # (state, x_u8, y, valid) -> number of correct predictions


def outer_step(model, tx, spec: N.CraftSpec, cfg: GenerateConfig, state, table, root, x_u8, y, idx):
  """One outer step: craft δ for the batch, write it into the table, train on t(x + noise).

  Args:
    state: TrainState; table: (N_pad, H, W, C) int8 noise table (pixel levels);
    root: the run's root key as uint32 key data; x_u8: (B, H, W, C) uint8; y: (B,) labels;
    idx: (B,) dataset indices (they seed the per-sample randomness).
  Returns:
    (new state, table with rows idx replaced, metrics dict of scalars).
  """
  x = normalize(x_u8)
  keys = K.per_sample(K.stream(jax.random.wrap_key_data(root), K.OUTER, state.step), idx)
  k_craft, k_aug, k_adv = K.split_each(keys, 3)
  delta = N.craft(spec, train.eval_logits_fn(model, state), x, y, k_craft)
  noise = N.quantize(delta, spec.radius_levels)
  table = table.at[idx].set(noise)
  x_in = N.apply_noise(x_u8, noise)
  if cfg.augment:
    x_in = jnp.clip(augment(x_in, k_aug, cfg.augment_pad, crop_size=cfg.crop_size), -0.5, 0.5)
  else:
    x_in = model_view(x_in, cfg.crop_size)
  if cfg.trains_robust_surrogate:
    x_in = train.adversarial_inputs(model, state, x_in, y, k_adv, radius=cfg.adv_radius / 255,
                                    steps=cfg.adv_steps, step_size=cfg.adv_step_size / 255,
                                    norm=cfg.adv_norm, unroll=cfg.unroll_loops)
  new_state, metrics = train.update(model, tx, state, x_in, y)
  metrics["noise_abs_mean"] = jnp.mean(jnp.abs(noise.astype(jnp.float32)))
  return new_state, table, metrics


def final_step(model, spec: N.CraftSpec, num_classes: int, state, table, written, root, x_u8, y,
               idx, valid):
  """Final-pass noise for a batch with the frozen final surrogate, written into the table.

  TAP descends toward the target class (y + 1) mod C; random draws U[-ρu, ρu].
  ``written`` (N_pad,) int32 counts how often each row was written; padded batch
  entries (valid False) repeat a real index and count nothing.
  """
  keys = K.per_sample(K.stream(jax.random.wrap_key_data(root), K.FINAL), idx)
  x = normalize(x_u8)
  if spec.method == "random":
    delta = N.random_noise(keys, x.shape[1:], spec.radius)
  else:
    target = (y + 1) % num_classes if spec.method == "tap" else y
    delta = N.craft(spec, train.eval_logits_fn(model, state), x, target, keys)
  table = table.at[idx].set(N.quantize(delta, spec.radius_levels))
  return table, written.at[idx].add(valid.astype(jnp.int32))


def correct_count(model, crop_size: int, state, x_u8, y, valid):
  pred = jnp.argmax(train.predict(model, state, model_view(normalize(x_u8), crop_size)), -1)
  return jnp.sum((pred == y) & valid)


def build_steps(model, tx, cfg: GenerateConfig, mesh, num_classes: int) -> Steps:
  spec = N.craft_spec(cfg)
  rep, bat = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  outer = jax.jit(functools.partial(outer_step, model, tx, spec, cfg),
                  in_shardings=(rep, bat, rep, bat, bat, bat), out_shardings=(rep, bat, rep),
                  donate_argnums=(0, 1))
  final = jax.jit(functools.partial(final_step, model, spec, num_classes),
                  in_shardings=(rep, bat, bat, rep, bat, bat, bat, bat), out_shardings=(bat, bat),
                  donate_argnums=(1, 2))
  correct = jax.jit(functools.partial(correct_count, model, cfg.crop_size),
                    in_shardings=(rep, bat, bat, bat), out_shardings=rep)
  return Steps(outer, final, correct)


# ----------------------------------------------------------------------------- helpers
def dataset_for(cfg: GenerateConfig) -> Dataset:
  """The dataset a config names, loaded and validated."""
  return load_dataset(cfg.dataset, cfg.data_dir, cfg.num_classes, cfg.image_size,
                      cfg.test_fraction)


def check_crop(crop_size: int, image_shape) -> None:
  """A crop must fit inside the stored images."""
  if crop_size > min(image_shape[:2]):
    raise SemJaxError(f"crop_size {crop_size} exceeds the {image_shape[0]}x{image_shape[1]} images")


def padded_rows(num: int, batch_size: int) -> int:
  """Rows of the noise table: num rounded up to a multiple of the global batch."""
  return math.ceil(num / batch_size) * batch_size


def padded_batches(num: int, batch_size: int):
  """Yield (idx (B,), valid count) covering range(num) in order; the last batch is padded."""
  for start in range(0, num, batch_size):
    idx = np.arange(start, min(start + batch_size, num), dtype=np.int32)
    valid = len(idx)
    if valid < batch_size:
      idx = np.concatenate([idx, np.full(batch_size - valid, idx[-1], np.int32)])
    yield idx, valid


def final_pass(steps: Steps, mesh, state, table, root, ds: Dataset, batch_size: int,
               log: Callable[[str], None] = print):
  """Regenerate the noise of EVERY training index exactly once, in dataset order.

  Returns (table, written): ``written`` (N,) is the device-side count of writes per
  index, checked here to be all ones.
  """
  num = ds.num_train
  written = jax.device_put(np.zeros(table.shape[0], np.int32), sharding.batch_sharded(mesh))
  t0 = time.time()
  nb = math.ceil(num / batch_size)
  for b, (idx, valid) in enumerate(padded_batches(num, batch_size)):
    v = sharding.put_batch(mesh, np.arange(batch_size) < valid)
    x, y, i = sharding.gather_batch(mesh, idx, ds.train_images, ds.train_labels)
    table, written = steps.final(state, table, written, root, x, y, i, v)
    if (b + 1) % max(1, nb // 5) == 0 or b + 1 == nb:
      jax.block_until_ready(written)
      log(f"final pass: {min((b + 1) * batch_size, num)}/{num} images, "
          f"{min((b + 1) * batch_size, num) / (time.time() - t0):.1f} img/s")
  counts = sharding.to_host(written)[:num]
  if not (counts == 1).all():
    raise RuntimeError(f"final pass wrote {int((counts == 1).sum())} of {num} indices exactly once")
  return table, counts


def accuracy(steps: Steps, mesh, state, images: np.ndarray, labels: np.ndarray,
             batch_size: int) -> float:
  """Clean accuracy of the eval-mode model on (images, labels)."""
  correct = 0
  for idx, valid in padded_batches(len(labels), batch_size):
    x, y, _ = sharding.gather_batch(mesh, idx, images, labels)
    correct += int(steps.correct(state, x, y, sharding.put_batch(mesh, np.arange(batch_size) < valid)))
  return correct / len(labels)


def _fmt_time(s: float) -> str:
  s = int(max(0, s))
  return f"{s // 3600}h{s // 60 % 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def data_fingerprint(ds: Dataset) -> dict:
  return {"name": ds.name, "train_shape": list(ds.train_images.shape),
          "test_shape": list(ds.test_images.shape), "num_classes": ds.num_classes,
          "sha256": artifacts.sha256_arrays(ds.train_images, ds.train_labels)}


def run_fingerprint(cfg: GenerateConfig, data: dict) -> str:
  blob = json.dumps({"config": cfg.result_fields(), "data": data}, sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()


_FRESH, _RESUME, _DONE = 0, 1, 2


def prepare_workdir(workdir: str, want: dict, done_files: tuple[str, ...]) -> int:
  """Return _FRESH, _RESUME or _DONE for a run described by ``want`` ({config, data, ...}).

  A workdir holding another run (different ``want``) or foreign files is refused,
  never overwritten. The run is done when every file of ``done_files`` exists.
  """
  run_cfg_path = os.path.join(workdir, artifacts.RUN_CONFIG_FILE)
  if os.path.exists(run_cfg_path):
    have = artifacts.read_json(run_cfg_path)
    changes = []
    for part in sorted(set(have) | set(want)):
      a, b = have.get(part, {}), want.get(part, {})
      if isinstance(a, dict) and isinstance(b, dict):
        changes += diff(a, b, prefix="" if part == "config" else f"{part}.")
      elif a != b:
        changes.append(f"{part}: {a!r} -> {b!r}")
    if changes:
      raise SemJaxError(f"workdir {workdir} holds a run with a different config or dataset "
                        f"({'; '.join(changes[:3])}{'; ...' if len(changes) > 3 else ''}); "
                        "refusing to overwrite it: use a new --workdir")
    done = all(os.path.exists(os.path.join(workdir, f)) for f in done_files)
    return _DONE if done else _RESUME
  if os.path.isdir(workdir) and os.listdir(workdir):
    raise SemJaxError(f"workdir {workdir} is not empty and holds no sem_jax run; "
                      "refusing to write into it: use a new or empty --workdir")
  os.makedirs(workdir, exist_ok=True)
  artifacts.write_json(run_cfg_path, want)
  return _FRESH


class Throughput:
  """Steps per second over the window since the last report (progress lines, metrics)."""

  def __init__(self):
    self._t, self._n = time.time(), 0

  def step(self) -> None:
    self._n += 1

  def report(self, steps_left: int) -> tuple[float, float, float]:
    """(steps/s in this window, ETA seconds for steps_left, now); starts a new window."""
    now = time.time()
    rate = self._n / max(now - self._t, 1e-9)
    self._t, self._n = now, 0
    return rate, steps_left / rate, now


def step_boundary(step: int, stop_at: int, checkpoint_every: int, stop: "StopSignal",
                  save: Callable[[int], None]) -> bool:
  """After a step: checkpoint when due, at stop_at, or on SIGTERM (all processes agree).

  Returns True when the loop must stop now because of SIGTERM.
  """
  preempted = sharding.any_process(stop.requested) and step < stop_at
  if step % checkpoint_every == 0 or step == stop_at or preempted:
    save(step)
  return preempted


def stopped_early(step: int, train_steps: int, preempted: bool, ckpts: Checkpoints, say) -> bool:
  """True (after closing the checkpoints and saying why) when the loop ended before train_steps."""
  if step >= train_steps:
    return False
  ckpts.close()
  why = "SIGTERM received" if preempted else "stop_after_step"
  say(f"stopped after step {step} ({why}); checkpoint saved. Re-run the same command to resume.")
  return True


class StopSignal:
  """Turns SIGTERM (preemption) into a flag the loop reads at each step boundary."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def write_noise_shards(workdir: str, table: jax.Array, num: int, eps: int) -> list[dict]:
  """Every process writes the rows [0, num) of its own devices' shards of the table.

  One device shard at a time is copied to host memory, so the table is never
  gathered on one host. Files: noise/noise-START-STOP.npy (atomic). Returns, on
  every process, the list of all shards {file, start, stop, sha256, max_abs} sorted
  by start (exchanged through small per-process JSON files on the shared workdir).
  """
  d = os.path.join(workdir, artifacts.NOISE_SHARD_DIR)
  if jax.process_index() == 0:
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):   # leftovers of an earlier attempt with another device layout
      os.unlink(os.path.join(d, f))
  sharding.sync("sem_jax_noise_shards_clean")
  mine = []
  for sh in table.addressable_shards:
    if sh.replica_id != 0:
      continue
    rows = sh.index[0]
    start, stop = rows.start or 0, min(rows.stop if rows.stop is not None else table.shape[0], num)
    if start >= stop:
      continue
    block = np.asarray(sh.data)[:stop - start]
    N.check_noise(block, eps)
    name = artifacts.shard_name(start, stop)
    sha = artifacts.save_noise(os.path.join(d, name), block)
    mine.append({"file": f"{artifacts.NOISE_SHARD_DIR}/{name}", "start": int(start),
                 "stop": int(stop), "sha256": sha, "max_abs": N.max_abs_levels(block)})
    del block
  artifacts.write_json(os.path.join(d, f"shards-process{jax.process_index()}.json"), mine)
  sharding.sync("sem_jax_noise_shards_written")
  shards = []
  for p in range(jax.process_count()):
    shards += artifacts.read_json(os.path.join(d, f"shards-process{p}.json"))
  shards.sort(key=lambda s_: s_["start"])
  edges = [(s_["start"], s_["stop"]) for s_ in shards]
  if [a for a, _ in edges] != [0] + [b for _, b in edges][:-1] or edges[-1][1] != num:
    raise RuntimeError(f"noise shards {edges} do not cover rows 0..{num} exactly once")
  return shards


def _tap_model(cfg: GenerateConfig, ds: Dataset, mesh, say):
  """TAP's fixed model: the final victim of the evaluate run in ``cfg.tap_model``."""
  from sem_jax.evaluate import load_victim
  model, state, ecfg, results = load_victim(cfg.tap_model, list(mesh.devices.flat))
  have = results["dataset"]
  if have["num_classes"] != ds.num_classes or tuple(have["image_shape"]) != ds.image_shape:
    raise SemJaxError(f"tap_model {cfg.tap_model} was trained on {have['name']} "
                      f"({have['num_classes']} classes, {tuple(have['image_shape'])}); this run's "
                      f"dataset has {ds.num_classes} classes, {ds.image_shape}")
  if ecfg.adv_radius > 0:
    say(f"note: tap_model was adversarially trained (ρa {ecfg.adv_radius:g}); TAP's paper "
        "setting uses a normally trained model")
  say(f"tap: fixed {ecfg.model} from {cfg.tap_model} (clean test accuracy "
      f"{results['final']['test_accuracy']:.4f}), target class (y + 1) mod {ds.num_classes}")
  return model, state


# ----------------------------------------------------------------------------- the loop
def generate_noise(cfg: GenerateConfig, workdir: str, *, dataset: Dataset | None = None,
                   log: Callable[[str], None] = print, devices=None) -> dict | None:
  """Generate defensive noise for ``cfg`` into ``workdir`` (resuming if it holds this run).

  Every process of a multi-process run calls this with the same arguments.
  Returns the manifest dict when the run is complete, or None when it stopped
  early (``cfg.stop_after_step`` or SIGTERM) after saving a checkpoint; re-run
  the same command to resume.
  """
  with StopSignal() as stop:
    return _generate(cfg, workdir, dataset, log, devices, stop)


def _generate(cfg, workdir, ds, log, devices, stop: StopSignal):
  cfg = cfg.validate()
  lead = jax.process_index() == 0
  say = log if lead else (lambda *_: None)
  ds = ds if ds is not None else dataset_for(cfg)
  if cfg.num_classes and cfg.num_classes != ds.num_classes:
    raise SemJaxError(f"num_classes {cfg.num_classes} does not match the dataset's {ds.num_classes}")
  if cfg.batch_size > ds.num_train:
    raise SemJaxError(f"batch_size {cfg.batch_size} exceeds the {ds.num_train} training images")
  check_crop(cfg.crop_size, ds.image_shape)
  mesh = sharding.make_mesh(devices)
  sharding.check_batch(cfg.batch_size, mesh)
  data = data_fingerprint(ds)
  if cfg.method == "tap":
    from sem_jax.evaluate import model_digest
    data = {**data, "tap_model_sha256": model_digest(cfg.tap_model)}
  status, error = -1, ""
  if lead:
    try:
      status = prepare_workdir(workdir, {"config": cfg.result_fields(), "data": data},
                               (artifacts.MANIFEST_FILE,))   # the manifest is written last
    except SemJaxError as e:
      error = str(e)
  status = sharding.broadcast_from_first(status)
  if status < 0:
    raise SemJaxError(error or "process 0 refused the workdir (see its error)")
  manifest_path = os.path.join(workdir, artifacts.MANIFEST_FILE)
  if status == _DONE:
    manifest = artifacts.read_json(manifest_path)
    say(f"{workdir} already holds the finished run (noise.npy sha256 "
        f"{manifest.get('noise_sha256', '?')[:12]}...); nothing to do")
    return manifest

  t_start = time.time()
  model = create_model(cfg.model, ds.num_classes, cfg.model_width, cfg.dtype)
  tx = train.make_optimizer(cfg)
  root = K.root_key(cfg.seed)
  root_data = np.asarray(jax.random.key_data(root))
  bat = sharding.batch_sharded(mesh)
  state = sharding.put_replicated(mesh, train.init_state(model, tx, K.stream(root, K.INIT),
                                                         ds.image_shape))
  if cfg.method == "tap":
    model, state = _tap_model(cfg, ds, mesh, say)
  n_rows = padded_rows(ds.num_train, cfg.batch_size)
  table = jax.jit(lambda: jnp.zeros((n_rows, *ds.image_shape), jnp.int8), out_shardings=bat)()
  fingerprint = run_fingerprint(cfg, data)
  ckpts = Checkpoints(os.path.join(workdir, CHECKPOINT_DIR), cfg.max_checkpoints)
  prior_elapsed, start = 0.0, 0
  target = {"train": state, "noise": table, "root": root_data}
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)
      if isinstance(a, jax.Array) else a, target)
  found = None if cfg.one_pass else ckpts.restore_latest(abstract, fingerprint, say)
  if cfg.one_pass:
    start = cfg.train_steps   # no surrogate training: only the pass over every image
  if found is not None:
    restored, meta = found
    if not np.array_equal(np.asarray(restored["root"]), root_data):
      raise SemJaxError(f"checkpoint step {meta.get('step')} was written with another seed")
    state, table = restored["train"], restored["noise"]
    start, prior_elapsed = int(state.step), float(meta.get("elapsed_s", 0.0))
    say(f"resuming {workdir} from checkpoint step {start}")
  root_r = sharding.put_replicated(mesh, root_data)  # raw key data: replicable across processes
  steps = build_steps(model, tx, cfg, mesh, ds.num_classes)

  def save(step: int) -> None:
    ckpts.save(step, {"train": state, "noise": table, "root": root_data},
               {"fingerprint": fingerprint, "step": step, "noise_rows": n_rows,
                "elapsed_s": prior_elapsed + time.time() - t_start})

  metrics_out = (artifacts.MetricsWriter(os.path.join(workdir, artifacts.METRICS_FILE),
                                         truncate_after_step=start) if lead else None)
  say(f"{cfg.method} on {ds.name}: {ds.num_train} train images {ds.image_shape}, "
      f"{ds.num_classes} classes, model {cfg.model}, batch {cfg.batch_size} over "
      f"{mesh.devices.size} device(s) in {jax.process_count()} process(es), "
      + ("one pass, no surrogate training" if cfg.one_pass else
         f"steps {start}->{cfg.train_steps}"))
  window, t_loop = Throughput(), time.time()
  stop_at = cfg.stop_after_step if 0 < cfg.stop_after_step < cfg.train_steps else cfg.train_steps
  step = start
  preempted = False
  while step < stop_at:
    idx = batch_indices(cfg.seed, step, ds.num_train, cfg.batch_size)
    x, y, i = sharding.gather_batch(mesh, idx, ds.train_images, ds.train_labels)
    state, table, m = steps.outer(state, table, root_r, x, y, i)
    step += 1
    window.step()
    if step % cfg.log_every == 0 or step == stop_at:
      m = {k: float(v) for k, v in m.items()}
      rate, eta, now = window.report(cfg.train_steps - step)
      lr = cfg.learning_rate * cfg.lr_decay_factor ** ((step - 1) // cfg.lr_decay_every)
      if not math.isfinite(m["loss"]):
        raise SemJaxError(f"surrogate loss became {m['loss']} at step {step}; lower learning_rate")
      say(f"step {step}/{cfg.train_steps}  loss {m['loss']:.4f}  acc {m['accuracy']:.3f}  "
          f"|noise| {m['noise_abs_mean']:.2f}  {rate:.2f} steps/s  "
          f"{rate * cfg.batch_size:.0f} img/s  ETA {_fmt_time(eta)}")
      if metrics_out:
        metrics_out.write({"step": step, **m, "lr": lr, "steps_per_s": rate, "eta_s": eta,
                           "elapsed_s": prior_elapsed + now - t_start})
    preempted = step_boundary(step, stop_at, cfg.checkpoint_every, stop, save)
    if preempted:
      break
  if stopped_early(step, cfg.train_steps, preempted, ckpts, say):
    return None
  loop_s = time.time() - t_loop

  say(f"final pass: regenerating noise for all {ds.num_train} training images")
  t_final = time.time()
  table, written = final_pass(steps, mesh, state, table, root_r, ds, cfg.batch_size, say)
  final_s = time.time() - t_final
  test_acc = train_acc = None
  if cfg.method != "random":
    test_acc = accuracy(steps, mesh, state, ds.test_images, ds.test_labels, cfg.batch_size)
    train_acc = accuracy(steps, mesh, state, ds.train_images, ds.train_labels, cfg.batch_size)
  ckpts.close()
  eps = math.floor(cfg.noise_radius)
  if cfg.noise_format == "shards":
    shards = write_noise_shards(workdir, table, ds.num_train, eps)
    stored = {"noise_format": "shards", "noise_shards": shards,
              "noise_sha256": artifacts.shards_digest(shards),
              "noise_max_abs": max(s_["max_abs"] for s_ in shards)}
  else:
    noise = sharding.to_host(table)[:ds.num_train]
    N.check_noise(noise, eps)
    stored = {"noise_format": "npy", "noise_file": artifacts.NOISE_FILE,
              "noise_max_abs": N.max_abs_levels(noise)}
    if lead:
      stored["noise_sha256"] = artifacts.save_noise(os.path.join(workdir, artifacts.NOISE_FILE),
                                                    noise)
    del noise
  noise_shape = (ds.num_train, *ds.image_shape)
  wall = prior_elapsed + time.time() - t_start
  manifest = None
  if lead:
    manifest = {
        "method": cfg.method, "config": cfg.to_dict(), "seed": cfg.seed,
        "dataset": {"name": ds.name, "num_train": ds.num_train,
                    "num_test": int(ds.test_images.shape[0]), "image_shape": list(ds.image_shape),
                    "num_classes": ds.num_classes, "sha256": data["sha256"]},
        **stored, "noise_shape": list(noise_shape),
        "noise_dtype": "int8", "noise_units": "pixel levels",
        "final_pass_regenerated": int(written.sum()), "final_pass_s": final_s,
        "surrogate_clean_test_accuracy": test_acc, "surrogate_clean_train_accuracy": train_acc,
        "sem_jax_version": sem_jax.__version__, "jax_version": jax.__version__,
        "device_count": int(mesh.devices.size), "process_count": jax.process_count(),
        "device_kind": jax.devices()[0].device_kind, "wall_time_s": wall,
        "loop_s_this_session": loop_s,
    }
    metrics_out.write({"event": "final", "step": cfg.train_steps, "test_accuracy": test_acc,
                       "train_accuracy": train_acc, "wall_time_s": wall})
    artifacts.write_json(manifest_path, manifest)
  sharding.sync("sem_jax_generate_done")
  if not lead:
    manifest = artifacts.read_json(manifest_path)
  say(f"done in {_fmt_time(wall)}: noise {noise_shape} int8 "
      f"({math.prod(noise_shape) / 2**20:.1f} MiB{', ' + str(len(manifest.get('noise_shards', []))) + ' shards' if cfg.noise_format == 'shards' else ''}), "
      f"max |noise| {manifest['noise_max_abs']} levels, {int(written.sum())}/{ds.num_train} "
      f"regenerated" + (f", surrogate clean test acc {test_acc:.4f}" if test_acc is not None
                          else "") + f" -> {workdir}")
  return manifest
