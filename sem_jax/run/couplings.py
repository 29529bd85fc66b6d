"""Fields that belong to a choice: when a command-line override switches a config's ``model``,
``dataset`` or ``method``, the fields the config file set for its old choice fall back to the
new choice's defaults (unless the same command line sets them too).

The couplings, each a table below:

- ``model``: ``model_width`` (the width of the file's model: 0, the new model's default); the
  victim's optimizer where the two models train differently (APBench trains ``vit`` and ``cait``
  with Adam, every other victim with SGD and momentum).
- ``dataset``: where the images come from (``data_dir``, ``num_classes``) and the sizes in pixels
  that follow the image side (``image_size``, ``crop_size``, ``augment_pad``, ``cutout_size``,
  ``lsp_patch``).
- ``method``: the crafting schedule, budget and switches that one method of the field uses
  (docs/method.md: TAP's 250 steps of 0.064 levels, hypo's 100 steps from a clean model without
  augmentation, LSP's L2 budget, ...), and the method-only fields (``tap_model``,
  ``em_variant``).

A resolved field's new value is what the run records (run_config.json holds the whole config);
[`resolve`][sem_jax.run.couplings.resolve] also returns one line per change for the log.
"""
from __future__ import annotations

import dataclasses
from typing import Any

TRANSFORMERS = ("vit", "cait")     # APBench trains these with Adam (train.py), no weight decay
ADAM_VICTIM = dict(optimizer="adam", learning_rate=1e-3, weight_decay=0.0)
SGD_VICTIM = dict(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4)


def model_defaults(old: str, new: str) -> dict[str, Any]:
  """The fields a switch from model ``old`` to ``new`` resets: the width always; the victim's
  optimizer, learning rate and weight decay when the two models train with different
  optimizers (Adam at lr 1e-3 for the transformers: APBench's optimizer at the learning rate of
  the ViT-for-small-datasets paper, since APBench's default lr 0.1 is an SGD rate)."""
  out: dict[str, Any] = {"model_width": 0}
  if (old in TRANSFORMERS) != (new in TRANSFORMERS):
    out.update(ADAM_VICTIM if new in TRANSFORMERS else SGD_VICTIM)
  return out


# Pixel sizes per dataset where they differ from the 32 px defaults (pad 4, cutout 16, LSP
# squares of 8): MNIST-5k's 28 px digits take configs/eval/mnist5k.py's cutout of 8; the
# ImageNet subset is read at 256 px and seen as 224 px crops with LSP's 32 px squares.
DATASET_SIZES = {
    "mnist5k": dict(cutout_size=8),
    "imagenet_subset": dict(image_size=256, crop_size=224, lsp_patch=32, num_classes=100),
}
SIZE_DEFAULTS = dict(image_size=0, crop_size=0, augment_pad=4, cutout_size=16, lsp_patch=8,
                     num_classes=0)
TFDS_SETS = ("cifar10", "cifar100", "svhn", "imagenet_subset")   # data_dir: a TFDS data dir


def dataset_defaults(old: str, new: str) -> dict[str, Any]:
  """The fields a switch from dataset ``old`` to ``new`` resets: the sizes that follow the
  image side and the class count, and ``data_dir`` unless both read one TFDS data directory."""
  out = {**SIZE_DEFAULTS, **DATASET_SIZES.get(new, {})}
  if not (old in TFDS_SETS and new in TFDS_SETS):
    out["data_dir"] = ""
  return out


# Each method's own crafting fields (docs/method.md; configs/apbench.py gives the field's attacks
# these values). A switch resets every field either method names: to the new method's value,
# else to GenerateConfig's default (SEM's paper values).
METHOD_PROFILES: dict[str, dict[str, Any]] = {
    "em": dict(num_samples=1),
    "tap": dict(noise_steps=250, noise_step_size=0.064, num_samples=1),
    "hypo": dict(noise_steps=100, noise_step_size=0.8, num_samples=1, augment=False,
                 project_to_valid_range=True),
    "lsp": dict(noise_radius=6.0),
    "ar": dict(noise_radius=255.0),
    "ntga": dict(noise_steps=10, noise_step_size=0.88),
}
METHOD_ONLY = dict(tap_model="", em_variant="aligned")   # reset when the method changes


def method_defaults(kind: type, old: str, new: str) -> dict[str, Any]:
  """The fields a switch from method ``old`` to ``new`` resets, with their new values."""
  base = {f.name: f.default for f in dataclasses.fields(kind)}
  names = set(METHOD_PROFILES.get(old, {})) | set(METHOD_PROFILES.get(new, {}))
  out = {name: METHOD_PROFILES.get(new, {}).get(name, base[name]) for name in sorted(names)}
  out.update(METHOD_ONLY)
  return out


def _couplings(kind: type, key: str, old: Any, new: Any) -> dict[str, Any]:
  if key == "model":
    return model_defaults(old, new)
  if key == "dataset":
    return dataset_defaults(old, new)
  return method_defaults(kind, old, new)


def resolve(before, after, overridden) -> tuple[Any, list[str]]:
  """``after`` (``before`` with command-line overrides applied) with every field coupled to a
  switched ``model``, ``dataset`` or ``method`` reset to the new choice's default, except the
  ``overridden`` field names; and one line per field that changed ('model_width: 16 -> 0 (the
  default of model 'vit')')."""
  fields = {f.name for f in dataclasses.fields(after)}
  changes: dict[str, Any] = {}
  notes: list[str] = []
  for key in ("model", "dataset", "method"):
    if key not in fields or getattr(before, key) == getattr(after, key):
      continue
    old, new = getattr(before, key), getattr(after, key)
    for name, value in _couplings(type(after), key, old, new).items():
      if name in fields and name not in overridden and getattr(after, name) != value:
        notes.append(f"{name}: {getattr(after, name)!r} -> {value!r} (the default of {key} "
                     f"{new!r}; the file's value was for {old!r})")
        changes[name] = value
  return dataclasses.replace(after, **changes), notes
