"""The run configs: frozen dataclasses with their units, defaults and validation.

[`GenerateConfig`][GenerateConfig] (noise generation) and [`EvalConfig`][EvalConfig] (a victim). Units: every
radius and step size is in pixel levels (8 means 8/255 of the [0, 1] range); they become the
math's specs, in fractions, in one place (`sem_jax.run.specs`). Loading config files and
parsing overrides: [`sem_jax.run.configfile`][sem_jax.run.configfile].
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from sem_jax.core.crafting.methods import METHODS as _METHODS
from sem_jax.errors import SemJaxError
from sem_jax.run import legacy
from sem_jax.run.fields import (AR_NORMS, DEFENSES, EM_VARIANTS, ENTF_RECIPES, METHOD_FIELDS,
                                METHODS, NOISE_FORMATS, OPTIMIZERS, TAP_STARTS, UERASER_STRENGTHS,
                                _at_least, _check_data_fields, _check_model_fields, _check_unroll,
                                _choice, _finite, check_eclipse)


# Fields that change how a run is executed or observed, never what it computes.
# A workdir may be resumed with different values of these.
RUNTIME_FIELDS = frozenset({"checkpoint_every", "log_every", "stop_after_step", "max_checkpoints",
                            "noise_format", "unroll_loops", "data_cache"})


class _RunConfig:
  """Shared methods of the run configs (frozen dataclasses)."""

  def replace(self, **kw: Any):
    return dataclasses.replace(self, **kw)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def result_fields(self) -> dict[str, Any]:
    """The fields that determine the result (all but RUNTIME_FIELDS), as the run's identity
    ([`sem_jax.run.legacy.result_fields`][sem_jax.run.legacy.result_fields])."""
    return legacy.result_fields({k: v for k, v in self.to_dict().items()
                                 if k not in RUNTIME_FIELDS}, self.model)


@dataclasses.dataclass(frozen=True)
class GenerateConfig(_RunConfig):
  """Everything that determines a noise-generation run (paper values in brackets)."""

  # --- what to compute ---
  method: str = "sem"            # sem | rem | em | tap | hypo | random | lsp | ar | ops | ntga |
                                 # dc (docs/method.md)
  dataset: str = "mnist5k"       # mnist5k (offline) | npz (your arrays) | folder (your images) |
                                 # cifar10 | cifar100 | svhn (TFDS svhn_cropped)
  data_dir: str = ""             # npz: the .npz file; folder: the image folder; tfds: TFDS data_dir
  num_classes: int = 0           # 0 = from the dataset; labels must lie in [0, num_classes)
  image_size: int = 0            # folder: resize every image to this square size (0 = keep)
  test_fraction: float = 0.2     # folder: seeded stratified held-out fraction per class
  data_cache: str = "auto"       # folder, imagenet_subset: where decoded images are prepared once
                                 # (auto: $SEM_JAX_DATA_CACHE or ~/.cache/sem_jax/datasets;
                                 # off: decode into memory every start); runtime, not identity
  model: str = "small_cnn"       # small_cnn | resnet18 (paper: CIFAR ResNet-18) | linear (tests) |
                                 # any victim model of MODELS
  model_width: int = 0           # channels of the first stage; 0 = model default (small_cnn 16, resnet18 64)
  model_init: str = "pytorch"    # pytorch: the release's (PyTorch default) weights | flax: Flax's
                                 # defaults (sem_jax.core.nets.models)
  dtype: str = "float32"         # compute dtype of the surrogate: float32 | bfloat16
  unroll_loops: str = "auto"     # unroll the K-step and PGD fori_loops? "auto": on CPU yes (XLA:CPU
                                 # runs convolutions ~3-4x slower inside a while loop), on GPU/TPU
                                 # no (rolled compiles far faster); true / false force it. Runtime
                                 # only: both give bit-identical noise (measured, README)
  seed: int = 0                  # every random draw (init, data order, noise) derives from it

  # --- outer loop: surrogate training (docs/method.md) ---
  batch_size: int = 128          # global batch B, split over all devices [128]
  train_steps: int = 5000        # surrogate SGD steps [5000 CIFAR, 3000 ImageNet]
  learning_rate: float = 0.1     # SGD lr [0.1]
  momentum: float = 0.9          # [0.9]
  weight_decay: float = 5e-4     # coupled L2, applied to every parameter [5e-4]
  lr_decay_every: int = 2000     # multiply lr by lr_decay_factor every this many steps [2000]
  lr_decay_factor: float = 0.1   # [0.1]
  augment: bool = True           # random flip + pad-and-crop, per sample
  augment_pad: int = 4           # zero padding before the random crop, pixels [4; 8 for 64 px]
  crop_size: int = 0             # >0: the model sees random-resized crops of this size (train) and
                                 # centre crops (test), e.g. 224 of 256 px [ImageNet subset]

  # --- defensive noise δu (crafting) ---
  noise_radius: float = 8.0      # ρu, L∞ pixel levels [8]
  noise_steps: int = 10          # K sign-descent steps [10 CIFAR, 7 ImageNet]
  noise_step_size: float = 1.6   # α, pixel levels [1.6 CIFAR, 2 ImageNet]
  num_samples: int = 5           # J samples of (augmentation, offset) in the expectation [5; 4]
  em_variant: str = "aligned"    # em only: aligned (docs/method.md: δ descends E_t CE(f(t(clip(x + δ))))) |
                                 # release (generate_em.py: δ crafted on one augmented view
                                 # t(x), projected into the valid range, trained on as float
                                 # noise, stored in that view's coordinates); README
  project_to_valid_range: bool = False  # after each descent step also project δ onto
                                 # {0 <= x + δ <= 255}: no budget is spent where the published
                                 # image clips it (the release does this for EM only)

  # --- adversary: surrogate PGD-AT (sem, rem) and REM's inner PGD ---
  adv_radius: float = 4.0        # ρa, pixel levels (L∞) or L2 norm in levels [4]
  adv_steps: int = 10            # PGD steps [10 CIFAR, 7 ImageNet]
  adv_step_size: float = 0.8     # PGD step, pixel levels [0.8 CIFAR, 1 ImageNet]
  adv_norm: str = "linf"         # linf | l2

  # --- tap: the fixed, normally trained model (docs/method.md) ---
  tap_model: str = ""            # workdir of a finished `run.py evaluate` (standard training) whose
                                 # final checkpoint and config give the model; no outer loop runs
  tap_start: str = "uniform"     # δ before TAP's first step: uniform U[-ρu, ρu] (the release runs
                                 # --pgd-random-start) | zero

  # --- the field's other attacks (each counts for its own method only; docs/method.md) ---
  lsp_patch: int = 8             # lsp: side of the constant noise squares, pixels [8 at 32 px,
                                 # 32 at 224 px]; noise_radius is LSP's L∞-equivalent ρ [6]:
                                 # every image's L2 norm is ρ sqrt(H W C) levels
  lsp_class_sep: float = 10.0    # lsp: the class centres' distance from the origin per feature [10]
  ar_norm: str = "l2"            # ar: the budget's norm, l2 (noise_radius = each image's L2 norm
                                 # in levels [255, APBench's 1.0]) | linf (levels [8])
  ar_crop: int = 4               # ar: rows and columns of the AR canvas dropped at the start [4]
  cuda_blur: float = 0.3         # cuda: the filters' entries are U[0, cuda_blur] [0.3, the release's
                                 # CIFAR command]; one entry per filter is 1
  cuda_kernel: int = 3           # cuda: filter side, pixels (odd) [3, the release]
  entf_recipe: str = "push"      # entf: push (away from the own class's centroid) | pull (to
                                 # the nearest other one); its reference model is tap_model, an
                                 # adversarially trained `evaluate` run
  ntga_block: int = 512          # ntga: training images attacked together through one kernel [512]
  ntga_targets: int = 1024       # ntga: clean training images whose kernel prediction is attacked
  ntga_time: float = 64.0        # ntga: gradient-flow time t of the kernel's MSE training [64]
  ntga_depth: int = 3            # ntga: hidden ReLU layers of the fully connected NTK
  dc_generator_lr: float = 1e-3  # dc, gue: learning rate of the noise generator (Adam; gue: SGD)
  dc_reset_every: int = 0        # dc: re-initialise the classifier every this many steps (0: never)
  gue_eta: float = 1.5           # gue: η of BOME's λ [1.5]
  gue_inner_steps: int = 10      # gue: Adam steps of the classifier's best response [10]
  gue_inner_lr: float = 1e-4     # gue: their learning rate [1e-4]

  # --- runtime (may differ between a run and its resume) ---
  checkpoint_every: int = 100    # steps between orbax checkpoints
  log_every: int = 10            # steps between progress lines / metrics.jsonl records
  stop_after_step: int = 0       # >0: checkpoint and stop after this step (then resume)
  max_checkpoints: int = 2       # how many recent checkpoints orbax keeps
  noise_format: str = "npy"      # npy: one noise.npy written by process 0; shards: every process
                                 # writes its devices' rows as noise/noise-START-STOP.npy (tables
                                 # too large for one host's memory, e.g. the ImageNet subset)

  @property
  def trains_robust_surrogate(self) -> bool:
    """SEM and REM train the surrogate with PGD-AT; EM trains it normally."""
    return (_METHODS[self.method].robust_surrogate and self.adv_radius > 0
            and self.adv_steps > 0)

  def validate(self) -> "GenerateConfig":
    """Raise [`SemJaxError`][SemJaxError] naming the first bad field; return self."""
    _choice("method", self.method, METHODS)
    _check_unroll(self)
    _check_data_fields(self)
    _check_model_fields(self)
    _finite(self, ("noise_radius", "noise_step_size", "adv_radius", "adv_step_size",
                   "learning_rate", "momentum", "weight_decay", "lr_decay_factor"))
    top = 255 * 64 if self.method == "ar" and self.ar_norm == "l2" else 255
    if not 0 < self.noise_radius <= top:
      raise SemJaxError(f"noise_radius (ε, pixel levels) must be in (0, {top}], got {self.noise_radius}")
    if self.noise_step_size <= 0:
      raise SemJaxError(f"noise_step_size must be > 0 pixel levels, got {self.noise_step_size}")
    if self.adv_norm == "linf" and not 0 <= self.adv_radius <= 255:
      raise SemJaxError(f"adv_radius (pixel levels) must be in [0, 255], got {self.adv_radius}")
    if self.adv_radius < 0 or self.adv_step_size < 0:
      raise SemJaxError("adv_radius and adv_step_size must be >= 0")
    _at_least(self, 1, ("batch_size", "train_steps", "noise_steps", "num_samples",
                        "checkpoint_every", "log_every", "lr_decay_every", "max_checkpoints"))
    _at_least(self, 0, ("adv_steps", "stop_after_step", "num_classes", "augment_pad", "seed",
                        "model_width", "crop_size"))
    _choice("noise_format", self.noise_format, NOISE_FORMATS)
    _choice("tap_start", self.tap_start, TAP_STARTS)
    _choice("em_variant", self.em_variant, EM_VARIANTS)
    if self.em_variant == "release" and self.method != "em":
      raise SemJaxError(f"em_variant 'release' is a variant of method em, not {self.method!r}; "
                        "set --config.em_variant=aligned")
    if self.em_variant == "release" and self.crop_size:
      raise SemJaxError("em_variant 'release' stores noise in the coordinates of the view it "
                        "was crafted on, which a crop_size > 0 view cannot hold; use crop_size 0")
    _choice("entf_recipe", self.entf_recipe, ENTF_RECIPES)
    if self.method == "entf" and not self.tap_model:
      raise SemJaxError("method 'entf' needs tap_model: the workdir of a finished `run.py "
                        "evaluate` with adversarial training on clean data (the release: ρa 4); "
                        "add --config.tap_model=WORKDIR")
    if _METHODS[self.method].fixed_model and not self.tap_model:
      raise SemJaxError(f"method {self.method!r} needs tap_model: the workdir of a finished "
                        "`run.py evaluate` with standard training (adv_radius 0); add "
                        "--config.tap_model=WORKDIR")
    _choice("ar_norm", self.ar_norm, AR_NORMS)
    _at_least(self, 0, ("ar_crop", "dc_reset_every"))
    _at_least(self, 1, ("lsp_patch", "ntga_block", "ntga_targets", "ntga_depth"))
    _finite(self, ("lsp_class_sep", "ntga_time", "dc_generator_lr", "cuda_blur", "gue_eta",
                   "gue_inner_lr"))
    if self.gue_eta <= 0 or self.gue_inner_lr <= 0 or self.gue_inner_steps < 1:
      raise SemJaxError("gue_eta and gue_inner_lr must be > 0 and gue_inner_steps >= 1")
    if not 0 < self.cuda_blur <= 1:
      raise SemJaxError(f"cuda_blur (the filters' largest entry besides the 1) must be in "
                        f"(0, 1], got {self.cuda_blur}")
    if self.cuda_kernel < 1 or self.cuda_kernel % 2 == 0:
      raise SemJaxError(f"cuda_kernel must be an odd number of pixels >= 1, got {self.cuda_kernel}")
    if self.lsp_class_sep <= 0 or self.ntga_time <= 0 or self.dc_generator_lr <= 0:
      raise SemJaxError("lsp_class_sep, ntga_time and dc_generator_lr must be > 0")
    if _METHODS[self.method].kind != "craft" and self.noise_format != "npy":
      raise SemJaxError(f"method {self.method!r} writes one noise.npy; use noise_format npy")
    return self

  def result_fields(self) -> dict[str, Any]:
    """As for every run config; each of METHOD_FIELDS counts for its own methods only."""
    out = super().result_fields()
    for name, owners in METHOD_FIELDS.items():
      if self.method not in owners:
        out.pop(name, None)
    return out

  @property
  def one_pass(self) -> bool:
    """TAP and random noise have no surrogate-training loop: only the pass over all images."""
    return not _METHODS[self.method].outer_loop


@dataclasses.dataclass(frozen=True)
class EvalConfig(_RunConfig):
  """A victim trained on the (protected) training set, tested on the CLEAN test set
  (docs/method.md, "Evaluation protocol").

  Paper values in brackets (CIFAR). Radii and steps in pixel levels.
  """

  # --- data (must be the dataset the noise was generated for) ---
  dataset: str = "mnist5k"
  data_dir: str = ""
  num_classes: int = 0
  image_size: int = 0
  test_fraction: float = 0.2
  data_cache: str = "auto"       # as GenerateConfig.data_cache (runtime)

  # --- the victim ---
  model: str = "resnet18"        # any of MODELS [resnet18]
  model_width: int = 0           # small_cnn / resnet18 / resnet50 only; 0 = default
  model_init: str = "pytorch"    # pytorch (the release's weights) | flax (Flax's defaults)
  dtype: str = "float32"
  unroll_loops: str = "auto"     # unroll the PGD loop? auto: on CPU only (see GenerateConfig)
  seed: int = 0                  # init, data order, augmentation, attacks, protected subset

  # --- training [40000 steps of 128, lr 0.1 x0.1 at 16000 and 32000, wd 5e-4] ---
  batch_size: int = 128
  train_steps: int = 40000
  optimizer: str = "sgd"         # sgd (with momentum) | adam (APBench's for vit and cait)
  learning_rate: float = 0.1
  momentum: float = 0.9          # SGD only
  weight_decay: float = 5e-4
  lr_decay_every: int = 16000
  lr_decay_factor: float = 0.1
  augment: bool = True           # flip + pad-and-crop, after the noise is added
  augment_pad: int = 4
  crop_size: int = 0             # >0: random-resized crops (train) / centre crops (test) [224]

  # --- PGD adversarial training (0 = standard training) ---
  adv_radius: float = 0.0        # ρa, pixel levels (L∞) or L2 norm in levels [0..4]
  adv_steps: int = 10            # [10]
  adv_step_size: float = 0.0     # pixel levels; 0 = 2 ρa / adv_steps (ρa/5 at 10 steps) [ρa/5]
  adv_norm: str = "linf"         # linf | l2

  # --- partial protection ---
  protected_fraction: float = 1.0  # p: seeded fraction of training indices that carry noise
  unprotected_only: bool = False   # the control: train on the (1 - p) unprotected part only

  # --- what a data thief tries: comma-separated, applied in the order of DEFENSES ---
  defenses: str = ""             # mean, gaussian, median, bilateral, grayscale, jpeg (on the
                                 # training images); coin, cutout, mixup, cutmix (per batch)
  gaussian_sigma: float = 0.0    # 3x3 Gaussian filter σ, pixels; 0 = OpenCV's 3x3 default
                                 # ([1, 2, 1] / 4 per axis: cv2.GaussianBlur(x, (3, 3), 0))
  bilateral_diameter: int = 9    # bilateral window diameter d, pixels [cv2.bilateralFilter d = 9]
  bilateral_sigma_color: float = 75.0   # pixel levels [75]
  bilateral_sigma_space: float = 75.0   # pixels [75]
  jpeg_quality: int = 10         # JPEG re-encoding quality, 1..95
  cutout_size: int = 16          # side of the cut-out square, pixels
  coin_alpha: float = 2.0        # COIN: per-pixel displacements U[-α, α], pixels [2.0, the
                                 # release's severity 4]
  mixup_alpha: float = 1.0       # λ ~ Beta(α, α)
  cutmix_alpha: float = 1.0
  bdr_bits: int = 2              # bits kept by bdr [APBench: RandomPosterize(bits=2)]
  standardize_mean: float = 128.0   # pixel levels every image channel is moved to
  standardize_std: float = 64.0     # pixel levels
  ueraser_strength: str = "standard"  # lite | standard | max: the share of training on the
                                 # max loss over ueraser_draws draws: none, the first quarter
                                 # (APBench: 50 of 200 epochs), all (300 of 200)
  ueraser_draws: int = 5         # augmented draws per image for the max loss [APBench 5]
  dvae_steps: int = 2000         # D-VAE training steps on the published training set
  dvae_latent: int = 8           # latent channels (a 1/4-resolution map)
  dvae_rate: float = 1.0         # the rate bound: KL per latent unit, nats
  dvae_lr: float = 1e-3          # Adam
  # ECLIPSE (docs/method.md): a denoiser trained on clean test images purifies the published
  # set; the release's values in brackets
  eclipse_clean: int = 200       # clean test images the thief holds, a seeded draw [2000 of
                                 # CIFAR-10's 10000]
  eclipse_steps: int = 300       # the denoiser's Adam steps at batch 64 [250K]
  eclipse_width: int = 16        # its channels, a multiple of 8 (2x at half resolution) [128]
  eclipse_lr: float = 1e-3       # Adam [1e-4]
  eclipse_schedule: int = 4000   # T of the cosine schedule [4000]
  eclipse_t: int = 100           # t*: the step the published images are noised to [100]
  eclipse_denoise_steps: int = 10   # ancestral steps back, respaced over [0, t*) [100]
  eclipse_gray_p: float = 0.4    # compensation: grayscale probability (colour images) [0.4]
  eclipse_noise_std: float = 0.05   # compensation: Gaussian noise std, fraction of [0, 1] [0.05]

  # --- observation and runtime ---
  eval_every: int = 500          # steps between clean-test evaluations (results.json curve)
  log_every: int = 100
  checkpoint_every: int = 1000
  stop_after_step: int = 0
  max_checkpoints: int = 2

  def result_fields(self) -> dict[str, Any]:
    """As for every run config, the filters' parameters counted only where their filter is
    used (`sem_jax.run.legacy.victim_fields`)."""
    return legacy.victim_fields(super().result_fields(), self.defense_list)

  @property
  def defense_list(self) -> tuple[str, ...]:
    return tuple(d.strip() for d in self.defenses.split(",") if d.strip())

  @property
  def attack_step_size(self) -> float:
    """PGD step in pixel levels (adv_step_size, or 2 adv_radius / adv_steps when 0)."""
    return self.adv_step_size or 2 * self.adv_radius / max(self.adv_steps, 1)

  def validate(self) -> "EvalConfig":
    """Raise [`SemJaxError`][SemJaxError] naming the first bad field; return self."""
    _check_unroll(self)
    _check_data_fields(self)
    _check_model_fields(self)
    _choice("optimizer", self.optimizer, OPTIMIZERS)
    for name in ("adv_radius", "adv_step_size", "learning_rate", "momentum", "weight_decay",
                 "lr_decay_factor", "protected_fraction", "gaussian_sigma", "mixup_alpha",
                 "cutmix_alpha", "bilateral_sigma_color", "bilateral_sigma_space"):
      v = getattr(self, name)
      if not math.isfinite(v) or v < 0:
        raise SemJaxError(f"{name} must be finite and >= 0, got {v}")
    if self.adv_norm == "linf" and self.adv_radius > 255:
      raise SemJaxError(f"adv_radius (pixel levels) must be in [0, 255], got {self.adv_radius}")
    if not 0 <= self.protected_fraction <= 1:
      raise SemJaxError(f"protected_fraction must be in [0, 1], got {self.protected_fraction}")
    if self.unprotected_only and self.protected_fraction >= 1:
      raise SemJaxError("unprotected_only trains on the unprotected part, which is empty at "
                        "protected_fraction 1; set protected_fraction < 1")
    for d in self.defense_list:
      if d not in DEFENSES:
        raise SemJaxError(f"unknown defense {d!r}; choose from {', '.join(DEFENSES)}")
    if len(set(self.defense_list)) != len(self.defense_list):
      raise SemJaxError(f"defenses lists one twice: {self.defenses!r}")
    if "mixup" in self.defense_list and "cutmix" in self.defense_list:
      raise SemJaxError("choose one of mixup and cutmix, not both")
    _choice("ueraser_strength", self.ueraser_strength, UERASER_STRENGTHS)
    if not 1 <= self.bdr_bits <= 8:
      raise SemJaxError(f"bdr_bits must be in [1, 8], got {self.bdr_bits}")
    if self.standardize_std <= 0 or not 0 <= self.standardize_mean <= 255:
      raise SemJaxError("standardize_mean must be in [0, 255] and standardize_std > 0, got "
                        f"{self.standardize_mean}, {self.standardize_std}")
    if self.dvae_rate <= 0 or self.dvae_lr <= 0:
      raise SemJaxError(f"dvae_rate and dvae_lr must be > 0, got {self.dvae_rate}, {self.dvae_lr}")
    check_eclipse(self)
    if "ueraser" in self.defense_list and set(self.defense_list) & {"mixup", "cutmix"}:
      raise SemJaxError("ueraser trains on its own max-loss views: not with mixup or cutmix")
    if not 1 <= self.jpeg_quality <= 95:
      raise SemJaxError(f"jpeg_quality must be in [1, 95], got {self.jpeg_quality}")
    for name in ("mixup_alpha", "cutmix_alpha", "bilateral_sigma_color",
                 "bilateral_sigma_space", "coin_alpha"):
      if not 0 < getattr(self, name) < math.inf:
        raise SemJaxError(f"{name} must be finite and > 0, got {getattr(self, name)}")
    _at_least(self, 1, ("batch_size", "train_steps", "lr_decay_every", "eval_every", "log_every",
                        "checkpoint_every", "max_checkpoints", "cutout_size", "bilateral_diameter",
                        "ueraser_draws", "dvae_steps", "dvae_latent"))
    _at_least(self, 0, ("adv_steps", "stop_after_step", "num_classes", "augment_pad", "seed",
                        "model_width", "crop_size"))
    return self


def from_dict(d: dict[str, Any], kind: type = GenerateConfig):
  """The config a stored dict describes: unknown keys dropped, and a field the dict lacks
  takes the value runs had before it existed ([`sem_jax.run.legacy.stored_defaults`][sem_jax.run.legacy.stored_defaults])."""
  known = {f.name for f in dataclasses.fields(kind)}
  return kind(**{**legacy.stored_defaults(known), **{k: v for k, v in d.items() if k in known}})


def diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
  """Human-readable list of fields where two JSON-like dicts differ ('field: old -> new')."""
  same = lambda u, v: json.dumps(u, sort_keys=True) == json.dumps(v, sort_keys=True)
  return [f"{prefix}{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
          for k in sorted(set(a) | set(b)) if not same(a.get(k), b.get(k))]
