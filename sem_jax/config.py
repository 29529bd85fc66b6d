"""Generation config: a frozen dataclass, Python config files, CLI overrides.

Units: every radius and step size is in pixel levels (8 means 8/255 of the
[0, 1] range). Inside the math they are converted with ``levels / 255``.

Config files are Python modules under ``configs/`` with ``get_config()``
returning a :class:`GenerateConfig` (the flax/big_vision convention).
``--config.FIELD=VALUE`` on the command line overrides one field; the value is
parsed with the field's type.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import sys
from typing import Any, Sequence

from sem_jax.errors import SemJaxError

METHODS = ("sem", "rem", "em")
DATASETS = ("mnist5k", "npz", "folder", "cifar10", "cifar100")
MODELS = ("small_cnn", "resnet18", "linear")
NORMS = ("linf", "l2")
DTYPES = ("float32", "bfloat16")

# Fields that change how a run is executed or observed, never what it computes.
# A workdir may be resumed with different values of these.
RUNTIME_FIELDS = frozenset({"checkpoint_every", "log_every", "stop_after_step", "max_checkpoints"})


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
  """Everything that determines a noise-generation run (paper values in brackets)."""

  # --- what to compute ---
  method: str = "sem"            # sem | rem | em
  dataset: str = "mnist5k"       # mnist5k (offline) | npz (your arrays) | folder (your images) |
                                 # cifar10 | cifar100
  data_dir: str = ""             # npz: the .npz file; folder: the image folder; tfds: TFDS data_dir
  num_classes: int = 0           # 0 = from the dataset; labels must lie in [0, num_classes)
  image_size: int = 0            # folder: resize every image to this square size (0 = keep)
  test_fraction: float = 0.2     # folder: seeded stratified held-out fraction per class
  model: str = "small_cnn"       # small_cnn | resnet18 (paper: CIFAR ResNet-18) | linear (tests)
  model_width: int = 0           # channels of the first stage; 0 = model default (small_cnn 16, resnet18 64)
  dtype: str = "float32"         # compute dtype of the surrogate: float32 | bfloat16
  unroll_loops: bool = True      # unroll the K-step and PGD fori_loops: XLA:CPU runs convolutions
                                 # ~4x slower inside a while loop; False compiles faster (GPU/TPU)
  seed: int = 0                  # every random draw (init, data order, noise) derives from it

  # --- outer loop: surrogate training (SPEC section 4, 5) ---
  batch_size: int = 128          # global batch B, split over all devices [128]
  train_steps: int = 5000        # surrogate SGD steps [5000 CIFAR, 3000 ImageNet]
  learning_rate: float = 0.1     # SGD lr [0.1]
  momentum: float = 0.9          # [0.9]
  weight_decay: float = 5e-4     # coupled L2, applied to every parameter [5e-4]
  lr_decay_every: int = 2000     # multiply lr by lr_decay_factor every this many steps [2000]
  lr_decay_factor: float = 0.1   # [0.1]
  augment: bool = True           # random flip + pad-and-crop, per sample
  augment_pad: int = 4           # zero padding before the random crop, pixels [4; 8 for 64 px]

  # --- defensive noise δu (crafting) ---
  noise_radius: float = 8.0      # ρu, L∞ pixel levels [8]
  noise_steps: int = 10          # K sign-descent steps [10 CIFAR, 7 ImageNet]
  noise_step_size: float = 1.6   # α, pixel levels [1.6 CIFAR, 2 ImageNet]
  num_samples: int = 5           # J samples of (augmentation, offset) in the expectation [5; 4]

  # --- adversary: surrogate PGD-AT (sem, rem) and REM's inner PGD ---
  adv_radius: float = 4.0        # ρa, pixel levels (L∞) or L2 norm in levels [4]
  adv_steps: int = 10            # PGD steps [10 CIFAR, 7 ImageNet]
  adv_step_size: float = 0.8     # PGD step, pixel levels [0.8 CIFAR, 1 ImageNet]
  adv_norm: str = "linf"         # linf | l2

  # --- runtime (may differ between a run and its resume) ---
  checkpoint_every: int = 100    # steps between orbax checkpoints
  log_every: int = 10            # steps between progress lines / metrics.jsonl records
  stop_after_step: int = 0       # >0: checkpoint and stop after this step (then resume)
  max_checkpoints: int = 2       # how many recent checkpoints orbax keeps

  # ------------------------------------------------------------------
  def replace(self, **kw: Any) -> "GenerateConfig":
    return dataclasses.replace(self, **kw)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def result_fields(self) -> dict[str, Any]:
    """The fields that determine the noise (all but RUNTIME_FIELDS)."""
    return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

  @property
  def trains_robust_surrogate(self) -> bool:
    """SEM and REM train the surrogate with PGD-AT; EM trains it normally."""
    return self.method in ("sem", "rem") and self.adv_radius > 0 and self.adv_steps > 0

  def validate(self) -> "GenerateConfig":
    """Raise :class:`SemJaxError` naming the first bad field; return self."""
    def bad(msg: str) -> SemJaxError:
      return SemJaxError(msg)
    if self.method not in METHODS:
      raise bad(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
    if self.dataset not in DATASETS:
      raise bad(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
    if self.model not in MODELS:
      raise bad(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
    if self.adv_norm not in NORMS:
      raise bad(f"unknown adv_norm {self.adv_norm!r}; choose one of {', '.join(NORMS)}")
    if self.dtype not in DTYPES:
      raise bad(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
    for name in ("noise_radius", "noise_step_size", "adv_radius", "adv_step_size",
                 "learning_rate", "momentum", "weight_decay", "lr_decay_factor"):
      v = getattr(self, name)
      if not math.isfinite(v):
        raise bad(f"{name} must be finite, got {v}")
    if not 0 < self.noise_radius <= 255:
      raise bad(f"noise_radius (ε, pixel levels) must be in (0, 255], got {self.noise_radius}")
    if self.noise_step_size <= 0:
      raise bad(f"noise_step_size must be > 0 pixel levels, got {self.noise_step_size}")
    if self.adv_norm == "linf" and not 0 <= self.adv_radius <= 255:
      raise bad(f"adv_radius (pixel levels) must be in [0, 255], got {self.adv_radius}")
    if self.adv_radius < 0 or self.adv_step_size < 0:
      raise bad("adv_radius and adv_step_size must be >= 0")
    for name in ("batch_size", "train_steps", "noise_steps", "num_samples", "checkpoint_every",
                 "log_every", "lr_decay_every", "max_checkpoints"):
      if getattr(self, name) < 1:
        raise bad(f"{name} must be >= 1, got {getattr(self, name)}")
    for name in ("adv_steps", "stop_after_step", "num_classes", "augment_pad", "seed", "model_width"):
      if getattr(self, name) < 0:
        raise bad(f"{name} must be >= 0, got {getattr(self, name)}")
    if not 0 <= self.test_fraction < 1:
      raise bad(f"test_fraction must be in [0, 1), got {self.test_fraction}")
    if self.image_size < 0:
      raise bad(f"image_size must be >= 0, got {self.image_size}")
    if self.dataset == "folder" and not self.data_dir:
      raise bad("dataset 'folder' needs data_dir: a folder with one sub-folder per class")
    if self.dataset == "npz" and not self.data_dir:
      raise bad("dataset 'npz' needs data_dir: the path of an .npz with x_train, y_train, x_test, y_test")
    return self


def _parse_value(field: dataclasses.Field, text: str) -> Any:
  typ = field.type if isinstance(field.type, type) else {"int": int, "float": float, "str": str,
                                                          "bool": bool}[field.type]
  if typ is bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
      return True
    if low in ("0", "false", "no", "off"):
      return False
    raise SemJaxError(f"--config.{field.name}: expected true/false, got {text!r}")
  try:
    if typ is int:
      f = float(text)
      if not f.is_integer():
        raise ValueError
      return int(f)
    return typ(text)
  except ValueError:
    raise SemJaxError(f"--config.{field.name}: expected {typ.__name__}, got {text!r}") from None


def apply_overrides(cfg: GenerateConfig, overrides: Sequence[str]) -> GenerateConfig:
  """Apply ``FIELD=VALUE`` strings (the part after ``--config.``)."""
  fields = {f.name: f for f in dataclasses.fields(cfg)}
  changes = {}
  for item in overrides:
    if "=" not in item:
      raise SemJaxError(f"--config.{item}: expected --config.FIELD=VALUE")
    name, value = item.split("=", 1)
    if name not in fields:
      raise SemJaxError(f"unknown config field {name!r} (known: {', '.join(sorted(fields))})")
    changes[name] = _parse_value(fields[name], value)
  return dataclasses.replace(cfg, **changes)


def load_config_file(path: str) -> Any:
  """Import a Python config file and return its ``get_config()``."""
  if not os.path.isfile(path):
    raise SemJaxError(f"config file not found: {path}")
  name = "sem_jax_user_config_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  if spec is None or spec.loader is None:
    raise SemJaxError(f"cannot import config file {path}")
  module = importlib.util.module_from_spec(spec)
  folder = os.path.dirname(os.path.abspath(path))
  sys.path.insert(0, folder)  # configs may import helpers that sit beside them
  try:
    spec.loader.exec_module(module)
  except SemJaxError:
    raise
  except Exception as e:
    raise SemJaxError(f"config file {path} failed to load: {type(e).__name__}: {e}") from None
  finally:
    sys.path.remove(folder)
  if not hasattr(module, "get_config"):
    raise SemJaxError(f"config file {path} defines no get_config()")
  return module.get_config()


def load_config(path: str, overrides: Sequence[str] = ()) -> GenerateConfig:
  cfg = load_config_file(path)
  if not isinstance(cfg, GenerateConfig):
    raise SemJaxError(f"{path}: get_config() must return a GenerateConfig, got {type(cfg).__name__}")
  return apply_overrides(cfg, overrides).validate()


def from_dict(d: dict[str, Any]) -> GenerateConfig:
  known = {f.name for f in dataclasses.fields(GenerateConfig)}
  return GenerateConfig(**{k: v for k, v in d.items() if k in known})


def diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
  """Human-readable list of fields where two JSON-like dicts differ ('field: old -> new')."""
  same = lambda u, v: json.dumps(u, sort_keys=True) == json.dumps(v, sort_keys=True)
  return [f"{prefix}{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
          for k in sorted(set(a) | set(b)) if not same(a.get(k), b.get(k))]
