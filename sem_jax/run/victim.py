"""A finished ``evaluate`` run's model, as a saved artifact: TAP attacks it.

The final checkpoint of an evaluate run is the victim; ``results.json`` (written last)
names it. This module reads it back for any user (TAP generation, notebooks) without
importing the evaluation loop.
"""
from __future__ import annotations

import os

from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs
from sem_jax.run import build, sharding
from sem_jax.run.checkpoint import CHECKPOINT_DIR, INTEGRITY_FILE, Checkpoints
from sem_jax.run.config import EvalConfig, from_dict

RESULTS_FILE = "results.json"


def read_results(workdir: str) -> dict:
  """results.json of a finished evaluate run (one-line error when there is none)."""
  rpath = os.path.join(workdir, RESULTS_FILE)
  if not fs.exists(rpath):
    raise SemJaxError(f"{workdir} holds no finished evaluate run ({RESULTS_FILE} missing)")
  return atomic.read_json(rpath)


def load_victim(workdir: str, devices=None, *, for_data=None, field: str = "tap_model"):
  """(model, TrainState, EvalConfig, results) of a finished evaluate run (e.g. for TAP).

  The state is restored from the final checkpoint (integrity-checked) and replicated. With
  ``for_data`` (a Dataset), a victim trained on another number of classes or image shape is
  refused first, naming the config ``field`` that points at it.
  """
  results = read_results(workdir)
  if for_data is not None:
    have = results["dataset"]
    if (have["num_classes"] != for_data.num_classes
        or tuple(have["image_shape"]) != tuple(for_data.image_shape)):
      raise SemJaxError(f"{field} {workdir} was trained on {have['name']} "
                        f"({have['num_classes']} classes, {tuple(have['image_shape'])}); this "
                        f"run's dataset has {for_data.num_classes} classes, "
                        f"{tuple(for_data.image_shape)}")
  cfg = from_dict(results["config"], EvalConfig)
  mesh = sharding.make_mesh(devices)
  model, _, state = build.model_and_state(cfg, results["dataset"]["num_classes"],
                                          tuple(results["dataset"]["image_shape"]), mesh,
                                          abstract=True)
  abstract = {"train": state, "root": build.root_key_data(cfg.seed)}
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
  results = read_results(workdir)
  path = os.path.join(workdir, results["model_checkpoint"], INTEGRITY_FILE)
  if not fs.exists(path):
    raise SemJaxError(f"{workdir}: the final model checkpoint is missing ({path})")
  return atomic.sha256_file(path)
