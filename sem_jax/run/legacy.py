"""The identity rules that keep workdirs in the 0.1.0 format resumable (and refuse the few that
cannot be), gathered in one place.

A run's identity is its config's result fields (``run_config.json``) and its checkpoints'
fingerprint. Since 0.1:

- fields were added ([`LATER_FIELDS`][LATER_FIELDS]); a run with such a field at the value every run
  had before the field existed has the identity it had then, so its workdir resumes;
- some models were redefined to the authors' release ([`REVISED_MODELS`][REVISED_MODELS]) and the four
  image filters made OpenCV-equal (``filter_revision``): those runs carry a revision, so a
  0.1 workdir of one is refused with the differing field named, never resumed on another
  network or other images;
- ``unroll_loops`` became a runtime field; 0.1 checkpoints' fingerprints include it
  ([`fingerprints`][fingerprints]);
- the first study version kept its config in ``study_config.json`` ([`STUDY_CONFIG`][STUDY_CONFIG]);
  the efficacy benchmark's workdirs (``efficacy_config.json``) are study workdirs now.
"""
from __future__ import annotations

from typing import Callable

from sem_jax.run.fields import DEFENSE_FIELDS

# Fields added after 0.1, with the value that runs made before they existed had.
LATER_FIELDS = {"project_to_valid_range": False, "model_init": "flax", "tap_start": "zero",
                "em_variant": "aligned",
                # the field's other attacks' options, at their defaults
                "lsp_patch": 8, "lsp_class_sep": 10.0, "ar_norm": "l2", "ar_crop": 4,
                "ntga_block": 512, "ntga_targets": 1024, "ntga_time": 64.0, "ntga_depth": 3,
                "dc_generator_lr": 1e-3, "dc_reset_every": 0, "cuda_blur": 0.3, "cuda_kernel": 3,
                "entf_recipe": "push",
                "gue_eta": 1.5, "gue_inner_steps": 10, "gue_inner_lr": 1e-4,
                # the thief's optimizer and defenses' options, at their defaults
                "optimizer": "sgd"}
# Models whose architecture changed after 0.1 (to the release's definitions).
REVISED_MODELS = {"vgg11_bn": 2, "vgg16_bn": 2, "vgg19_bn": 2, "densenet121": 2, "wrn34_10": 2}
# The victim filters' parameters with their 0.1 values (None: did not exist), and their filters.
FILTER_FIELDS = {"gaussian_sigma": 1.0, "bilateral_sigma_color": 75.0,
                 "bilateral_sigma_space": 75.0, "bilateral_diameter": None}
FILTER_OF = {"gaussian_sigma": ("gaussian",), "bilateral_sigma_color": ("bilateral",),
             "bilateral_sigma_space": ("bilateral",), "bilateral_diameter": ("bilateral",)}
FILTERS = ("mean", "gaussian", "median", "bilateral")
FILTER_REVISION = 2
STUDY_CONFIG = "study_config.json"        # single-study workdirs of the first study version
EFFICACY_CONFIG = "efficacy_config.json"  # the efficacy benchmark's workdirs


def result_fields(fields: dict, model: str) -> dict:
  """A config's result fields as identity: LATER_FIELDS at their old value left out, a
  revised model's revision added."""
  out = without_later_defaults(fields)
  if model in REVISED_MODELS:
    out["model_revision"] = REVISED_MODELS[model]
  return out


def without_later_defaults(fields: dict) -> dict:
  """A recorded config without the LATER_FIELDS it holds at their old value: the same run as
  one recorded before (or without) them."""
  return {k: v for k, v in fields.items() if not (k in LATER_FIELDS and v == LATER_FIELDS[k])}


def victim_fields(out: dict, defenses: tuple) -> dict:
  """A victim's identity: each defense's options counted only where the defense is used
  ([`sem_jax.run.fields.DEFENSE_FIELDS`][sem_jax.run.fields.DEFENSE_FIELDS]), each filter parameter only where its filter is used
  (unused: at its 0.1 value, or left out where it did not exist), and a victim that filters
  carries the filters' revision."""
  used = set(defenses)
  for name, owners in DEFENSE_FIELDS.items():
    if not used & set(owners):
      out.pop(name, None)
  for name, old in FILTER_FIELDS.items():
    if not used & set(FILTER_OF[name]):
      if old is None:
        out.pop(name, None)
      else:
        out[name] = old
  if used & set(FILTERS):
    out["filter_revision"] = FILTER_REVISION
  return out


def stored_defaults(known: set) -> dict:
  """What a stored config dict that lacks a LATER field means: the value runs had then."""
  return {k: v for k, v in LATER_FIELDS.items() if k in known}


def fingerprints(fingerprint: Callable[[dict, dict], str], config_fields: dict,
                 data: dict) -> tuple[str, ...]:
  """The fingerprints the same run's checkpoints carried while ``unroll_loops`` counted."""
  return tuple(fingerprint({**config_fields, "unroll_loops": u}, data) for u in (True, False))
