"""The allowed values of the run configs' fields and the checks that enforce them
([`sem_jax.run.config`][sem_jax.run.config] validates with these; a bad value is one SemJaxError naming the
field)."""
from __future__ import annotations

import math

from sem_jax.core.attacks import NORMS
from sem_jax.core.crafting.methods import METHODS as _METHODS
from sem_jax.core.nets.models import INITS, MODELS, WIDTH_MODELS
from sem_jax.errors import SemJaxError

METHODS = tuple(_METHODS)          # sem_jax.core.crafting.methods
DATASETS = ("mnist5k", "skimage_photos", "sklearn_digits", "npz", "folder", "cifar10", "cifar100",
            "svhn", "imagenet_subset")
DEFENSES = ("mean", "gaussian", "median", "bilateral", "grayscale", "jpeg", "iss_gray", "iss_jpeg",
            "bdr", "standardize", "dvae", "eclipse", "cutout", "coin", "mixup", "cutmix", "ueraser")
UERASER_STRENGTHS = ("lite", "standard", "max")
# Defense options that count only where their defense is used (a victim without it leaves
# them out of its identity).
DEFENSE_FIELDS = {"bdr_bits": ("bdr",), "standardize_mean": ("standardize",),
                  "standardize_std": ("standardize",), "ueraser_strength": ("ueraser",),
                  "ueraser_draws": ("ueraser",),
                  "dvae_steps": ("dvae",), "dvae_latent": ("dvae",), "dvae_rate": ("dvae",),
                  "dvae_lr": ("dvae",), "coin_alpha": ("coin",),
                  **{f"eclipse_{k}": ("eclipse",) for k in (
                      "clean", "steps", "width", "lr", "schedule", "t", "denoise_steps",
                      "gray_p", "noise_std")}}
AR_NORMS = ("l2", "linf")
ENTF_RECIPES = ("push", "pull")
# Fields that count for some methods only (a run of another method leaves them out of its
# identity, so adding one never changes an existing run's identity).
METHOD_FIELDS = {"tap_start": ("tap",), "lsp_patch": ("lsp",), "lsp_class_sep": ("lsp",),
                 "ar_norm": ("ar",), "ar_crop": ("ar",), "ntga_block": ("ntga",),
                 "ntga_targets": ("ntga",), "ntga_time": ("ntga",), "ntga_depth": ("ntga",),
                 "dc_generator_lr": ("dc", "gue"), "dc_reset_every": ("dc", "gue"),
                 "gue_eta": ("gue",), "gue_inner_steps": ("gue",), "gue_inner_lr": ("gue",),
                 "cuda_blur": ("cuda",), "cuda_kernel": ("cuda",), "entf_recipe": ("entf",)}
TAP_STARTS = ("uniform", "zero")   # TAP's δ before its first step
EM_VARIANTS = ("aligned", "release")   # EM as docs/method.md defines it | as the release's
                                       # generate_em.py
DTYPES = ("float32", "bfloat16")
OPTIMIZERS = ("sgd", "adam")
UNROLL_CHOICES = ("auto", "true", "false")
NOISE_FORMATS = ("npy", "shards")


def _check_unroll(cfg) -> None:
  if not isinstance(cfg.unroll_loops, bool):
    _choice("unroll_loops", str(cfg.unroll_loops).lower(), UNROLL_CHOICES)


def _choice(field: str, value: str, choices) -> None:
  if value not in choices:
    raise SemJaxError(f"unknown {field} {value!r}; choose one of {', '.join(choices)}")


def _finite(cfg, names) -> None:
  for name in names:
    v = getattr(cfg, name)
    if not math.isfinite(v):
      raise SemJaxError(f"{name} must be finite, got {v}")


def _at_least(cfg, low: int, names) -> None:
  for name in names:
    if getattr(cfg, name) < low:
      raise SemJaxError(f"{name} must be >= {low}, got {getattr(cfg, name)}")


def _check_model_fields(cfg) -> None:
  """The model, its width, the attack norm and the compute dtype of a run config."""
  _choice("model", cfg.model, MODELS)
  if cfg.model_width and cfg.model not in WIDTH_MODELS:
    raise SemJaxError(f"model_width applies to {', '.join(WIDTH_MODELS)}, not {cfg.model!r}; "
                      "set --config.model_width=0 (the model's own width)")
  _choice("model_init", cfg.model_init, INITS)
  _choice("adv_norm", cfg.adv_norm, NORMS)
  _choice("dtype", cfg.dtype, DTYPES)


def _check_data_fields(cfg) -> None:
  if cfg.dataset not in DATASETS:
    raise SemJaxError(f"unknown dataset {cfg.dataset!r}; choose one of {', '.join(DATASETS)}")
  if not 0 <= cfg.test_fraction < 1:
    raise SemJaxError(f"test_fraction must be in [0, 1), got {cfg.test_fraction}")
  if cfg.image_size < 0:
    raise SemJaxError(f"image_size must be >= 0, got {cfg.image_size}")
  if cfg.dataset == "folder" and not cfg.data_dir:
    raise SemJaxError("dataset 'folder' needs data_dir: a folder with one sub-folder per class "
                      "(--config.data_dir=FOLDER)")
  if cfg.dataset == "npz" and not cfg.data_dir:
    raise SemJaxError("dataset 'npz' needs data_dir: the path of an .npz with x_train, y_train, "
                      "x_test, y_test (--config.data_dir=FILE.npz)")


def check_eclipse(cfg) -> None:
  """An EvalConfig's ECLIPSE options (counted only where the defense is used; checked always)."""
  if not 1 <= cfg.eclipse_t <= cfg.eclipse_schedule:
    raise SemJaxError(f"eclipse_t must be in [1, eclipse_schedule={cfg.eclipse_schedule}], got "
                      f"{cfg.eclipse_t}")
  if not 1 <= cfg.eclipse_denoise_steps <= cfg.eclipse_t:
    raise SemJaxError(f"eclipse_denoise_steps must be in [1, eclipse_t={cfg.eclipse_t}], got "
                      f"{cfg.eclipse_denoise_steps}")
  if cfg.eclipse_width < 8 or cfg.eclipse_width % 8:
    raise SemJaxError(f"eclipse_width must be a multiple of 8, got {cfg.eclipse_width}")
  if not (0 <= cfg.eclipse_gray_p <= 1 and 0 <= cfg.eclipse_noise_std <= 1):
    raise SemJaxError(f"eclipse_gray_p and eclipse_noise_std (a fraction of [0, 1], not "
                      f"levels) must be in [0, 1], got {cfg.eclipse_gray_p}, "
                      f"{cfg.eclipse_noise_std}")
  if not (cfg.eclipse_lr > 0 and cfg.eclipse_clean >= 1 and cfg.eclipse_steps >= 1):
    raise SemJaxError(f"eclipse_lr must be > 0 and eclipse_clean, eclipse_steps >= 1, got "
                      f"{cfg.eclipse_lr}, {cfg.eclipse_clean}, {cfg.eclipse_steps}")
