"""What a run is: the identity recorded in its workdir (``run_config.json``: config, data,
inputs) and the fingerprint its checkpoints carry; when a workdir holds the same run.

A run is determined by its result fields and its inputs' contents (the training data's
SHA-256, a noise table's SHA-256, TAP's model digest). Paths to inputs are recorded too, but
a tree of runs copied to another place is still the same runs ([`moved_inputs`][moved_inputs]).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Sequence

import jax

from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs
from sem_jax.run import legacy
from sem_jax.run.config import RUNTIME_FIELDS, diff

RUN_CONFIG_FILE = "run_config.json"


def run_fingerprint(config_fields: dict, data: dict) -> str:
  """SHA-256 of what determines a run's result: its config and its data (checkpoint identity)."""
  blob = json.dumps({"config": config_fields, "data": data}, sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()


def accepted_fingerprints(config_fields: dict, data: dict) -> tuple[str, ...]:
  """Other fingerprints this same run's checkpoints may carry
  ([`sem_jax.run.legacy.fingerprints`][sem_jax.run.legacy.fingerprints])."""
  return legacy.fingerprints(run_fingerprint, config_fields, data)


# The files that tell the other kinds of sem_jax folders apart, named here for the layers above
# (sem_jax.suites.study.lock.MARK_FILE, sem_jax.commands.formats.EXPORT_MANIFEST).
STUDY_MARK = "sem_jax_study.json"
EXPORT_MARK = "export_manifest.json"
KINDS = {"generate": "a noise run (`generate`)", "evaluate": "a victim (`evaluate`)",
         "study": "a study's workdir (`study`)", "export": "an export (`export`)"}


def identity_kind(identity: dict) -> str:
  """``generate`` or ``evaluate``: the command a recorded run identity belongs to."""
  return "generate" if "method" in (identity.get("config") or {}) else "evaluate"


def folder_kind(folder: str) -> str | None:
  """Which kind of sem_jax folder ``folder`` is (a key of KINDS), or None."""
  for kind, mark in (("study", STUDY_MARK), ("export", EXPORT_MARK)):
    if fs.exists(os.path.join(folder, mark)):
      return kind
  return None


def identity_changes(have: dict, want: dict) -> list[str]:
  """Where a recorded run identity ({config, data, ...}) differs from ``want``: 'field: old ->
  new' lines; empty when they are the same run."""
  changes = []
  for part in sorted(set(have) | set(want)):
    a, b = have.get(part, {}), want.get(part, {})
    if part == "config":   # runtime-only fields, and later fields at the value runs had then
      a = legacy.without_later_defaults(without_runtime(a))
    if isinstance(a, dict) and isinstance(b, dict):
      changes += diff(a, b, prefix="" if part == "config" else f"{part}.")
    elif a != b:
      changes.append(f"{part}: {a!r} -> {b!r}")
  return changes


def moved_inputs(workdir: str, want: dict, places: Sequence[tuple[str, str]],
                 log: Callable[[str], None] = print) -> dict:
  """The identity to claim ``workdir`` with: ``want``, or the recorded one where the workdir
  holds this same run made while an input lay elsewhere.

  ``places``: (part, key) entries of the identity that say where an input lies (a noise
  workdir, TAP's model), each beside the input's content digest in the identity. A copied
  tree of runs (a GPU's study continued here) differs at those paths only: the run keeps its
  recorded identity, so it resumes and its result stands. Other differences are left to
  [`claim_workdir`][claim_workdir] to refuse. Every process reads ``run_config.json`` (shared storage)."""
  path = os.path.join(workdir, RUN_CONFIG_FILE)
  if not places or not fs.exists(path):
    return want
  try:
    have = atomic.read_json(path)
  except SemJaxError:
    return want                       # claim_workdir names the problem
  moved, notes = json.loads(json.dumps(want)), []
  for part, key in places:
    was, now = (have.get(part) or {}).get(key), (moved.get(part) or {}).get(key)
    if isinstance(was, str) and isinstance(now, str) and was != now:
      moved[part][key] = was
      notes.append(f"{part}.{key} {was} -> {now}")
  if not notes or identity_changes(have, moved):
    return want
  if jax.process_index() == 0:
    log(f"note: {workdir} holds this run, made with its inputs elsewhere ({'; '.join(notes)}; "
        "same content digests): it keeps its recorded identity")
  return moved


def without_runtime(obj):
  """A JSON-like config without its runtime-only fields, at any depth."""
  if isinstance(obj, dict):
    return {k: without_runtime(v) for k, v in obj.items() if k not in RUNTIME_FIELDS}
  if isinstance(obj, list):
    return [without_runtime(v) for v in obj]
  return obj
