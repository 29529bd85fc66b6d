"""Run configs -> the math's specs (both in pixel levels): the one place where a
config becomes a [`CraftSpec`][sem_jax.core.crafting.noise.CraftSpec], a
[`GenSpec`][sem_jax.core.crafting.generation.GenSpec] or a [`VictimSpec`][sem_jax.core.thief.victim.VictimSpec],
through the constructors of [`sem_jax.core.crafting.crafters`][sem_jax.core.crafting.crafters] and
[`sem_jax.core.attacks.AttackSpec`][sem_jax.core.attacks.AttackSpec].
"""
from __future__ import annotations

import dataclasses
import functools
import math

from sem_jax.core.crafting import budgets, crafters
from sem_jax.core import keys as K
from sem_jax.core.poisons import cuda

from sem_jax.core.thief import defenses as D
from sem_jax.core.attacks import AttackSpec
from sem_jax.core.crafting.generation import GenSpec
from sem_jax.core.crafting.methods import METHODS
from sem_jax.core.crafting.noise import CraftSpec
from sem_jax.core.units import whole_levels
from sem_jax.core.thief.victim import VictimSpec
from sem_jax.run.runtime import loops_unrolled


def craft_spec(cfg) -> CraftSpec:
  """The defensive-noise step of a GenerateConfig."""
  unroll = loops_unrolled(cfg.unroll_loops)
  common = dict(augment_pad=cfg.augment_pad if cfg.augment else -1, crop_size=cfg.crop_size,
                project=cfg.project_to_valid_range, unroll=unroll)
  k = dict(radius=cfg.noise_radius, steps=cfg.noise_steps, step_size=cfg.noise_step_size,
           samples=cfg.num_samples)
  if cfg.method in ("sem", "rem"):
    make = crafters.sem if cfg.method == "sem" else crafters.rem
    return make(**k, adv_radius=cfg.adv_radius, adv_steps=cfg.adv_steps,
                adv_step_size=cfg.adv_step_size, adv_norm=cfg.adv_norm, **common)
  if cfg.method == "em":
    return crafters.em(**k, **common)
  if cfg.method == "tap":
    return crafters.tap(**k, start=cfg.tap_start, **common)
  if cfg.method == "hypo":
    return crafters.hypo(**k, **common)
  if cfg.method == "random":
    return crafters.random_baseline(cfg.noise_radius)
  raise ValueError(f"method {cfg.method!r} has no crafting step (sem_jax.core.crafting.methods)")


def budget(cfg, image_shape) -> dict:
  """The budget a GenerateConfig's method declares, in pixel levels ([`sem_jax.core.crafting.budgets`][sem_jax.core.crafting.budgets]):
  lsp L2 ρ sqrt(H W C) on its patches, ar L2 (or L∞) ρu, ops one pixel, cuda its filters'
  size and blur, the others L∞ ρu."""
  norm = METHODS[cfg.method].norm
  if norm == "lsp":
    return budgets.l2(cfg.noise_radius * math.sqrt(math.prod(image_shape)), cfg.lsp_patch)
  if norm == "l2" and cfg.ar_norm == "l2":
    return budgets.l2(cfg.noise_radius)
  if norm == "l0":
    return budgets.l0(1)
  if norm == "conv":   # the filters themselves join when they are drawn (commands.attacks)
    return budgets.conv(cfg.cuda_kernel, cfg.cuda_blur)
  return budgets.linf(whole_levels(cfg.noise_radius))


CLASS_PATTERNS = 7   # the key stream of the class-wise patterns and filters (lsp, ar, cuda)


def cuda_filters(cfg, num_classes: int):
  """CUDA's class filters of a GenerateConfig ([`sem_jax.core.poisons.cuda.filters`][sem_jax.core.poisons.cuda.filters]):
  drawn from its seed's class-pattern stream, the private key. A CUDA import recomputes them
  from the seed it is given."""
  return cuda.filters(K.stream(K.root_key(cfg.seed), CLASS_PATTERNS), num_classes,
                      cfg.cuda_kernel, cfg.cuda_blur)


def outside(budget: dict, noise, clean_u8=None, labels=None):
  """(n,) True for each image of a block outside ``budget``: the conv budget's filter check
  ([`sem_jax.core.poisons.cuda.outside`][sem_jax.core.poisons.cuda.outside]) or the norm checks
  ([`sem_jax.core.crafting.budgets.outside`][sem_jax.core.crafting.budgets.outside])."""
  if budget.get("norm") == "conv":
    return cuda.outside(budget, noise, clean_u8, labels)
  return budgets.outside(budget, noise, clean_u8, labels)


def block_violations(budget: dict, noise, clean_u8=None, labels=None) -> int:
  """How many images of the block are [`outside`][outside] ``budget``."""
  return int(outside(budget, noise, clean_u8, labels).sum())


def budget_with_filters(cfg, image_shape, num_classes: int) -> dict:
  """[`budget`][budget], with CUDA's class filters in it (what ``verify`` checks a CUDA
  table against)."""
  b = budget(cfg, image_shape)
  if b["norm"] == "conv":
    b = budgets.conv(cfg.cuda_kernel, cfg.cuda_blur, cuda_filters(cfg, num_classes))
  return b


def gen_spec(cfg) -> GenSpec:
  """The generation steps' spec of a GenerateConfig (EM ``em_variant="release"``: crafted on
  one already-augmented view, no expectation, x + δ kept in the valid range)."""
  craft = craft_spec(cfg)
  release_em = cfg.method == "em" and cfg.em_variant == "release"
  if release_em:
    craft = dataclasses.replace(craft, augment_pad=-1, crop_size=0, num_samples=1, project=True)
  return GenSpec(craft, cfg.augment_pad if cfg.augment else -1, cfg.crop_size, release_em)


def victim_spec(cfg) -> VictimSpec:
  """The victim step's spec of an EvalConfig (its PGD-AT and per-batch defenses)."""
  used = cfg.defense_list
  mix = (functools.partial(D.mixup, alpha=cfg.mixup_alpha) if "mixup" in used else
         functools.partial(D.cutmix, alpha=cfg.cutmix_alpha) if "cutmix" in used else None)
  return VictimSpec(
      cfg.augment_pad if cfg.augment else -1, cfg.crop_size,
      AttackSpec(cfg.adv_radius, cfg.adv_steps, cfg.attack_step_size, cfg.adv_norm,
                 loops_unrolled(cfg.unroll_loops)),
      cfg.cutout_size if "cutout" in used else 0, cfg.coin_alpha if "coin" in used else 0.0,
      mix, cfg.ueraser_draws if "ueraser" in used else 0, ueraser_max_until(cfg),
      (cfg.eclipse_gray_p, cfg.eclipse_noise_std) if "eclipse" in used else None)


def ueraser_max_until(cfg) -> int:
  """Steps UEraser trains on the max loss over its draws: none (lite), the first quarter
  (standard: APBench's 50 of 200 epochs), all (max: its 300 of 200)."""
  if "ueraser" not in cfg.defense_list:
    return 0
  share = {"lite": 0.0, "standard": 0.25, "max": 1.0}[cfg.ueraser_strength]
  return int(round(share * cfg.train_steps))


def preprocess(cfg):
  """The victim's preprocessing defenses as a uint8 block -> uint8 block function, or None."""
  if not set(cfg.defense_list) & set(D.PREPROCESS):
    return None
  return functools.partial(D.preprocess, defenses=cfg.defense_list,
                           gaussian_sigma=cfg.gaussian_sigma,
                           bilateral_diameter=cfg.bilateral_diameter,
                           bilateral_sigma_color=cfg.bilateral_sigma_color,
                           bilateral_sigma_space=cfg.bilateral_sigma_space,
                           jpeg_quality=cfg.jpeg_quality, bdr_bits=cfg.bdr_bits,
                           standardize_mean=cfg.standardize_mean,
                           standardize_std=cfg.standardize_std)
