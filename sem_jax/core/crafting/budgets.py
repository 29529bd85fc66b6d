"""Each method's noise budget in its own norm, and the check of stored noise against it
(docs/method.md, "Budgets"). Plain numpy: ``verify`` runs it a block at a time.

A budget is a JSON-ready dict recorded in the manifest:

- ``{"norm": "linf", "radius_levels": r}``: every entry |noise| <= r (sem, rem, em, tap,
  hypo, random, ntga, dc);
- ``{"norm": "l2", "radius_levels": r}``: every image's L2 norm <= r levels (ar; the
  stored levels are rounded toward zero, so rounding never leaves the ball);
- ``{"norm": "l2", "radius_levels": r, "patch": p}``: as l2, and the noise constant on each
  p x p square of the patch grid (lsp);
- ``{"norm": "l0", "pixels": k}``: at most k pixel positions per image differ, and there
  the published image is 0 or 255 in every channel (ops).
- ``{"norm": "conv", "kernel_size": s, "blur": b, "filters": [...]}``: every published image
  is its clean image convolved with one of the recorded class filters and rescaled
  (cuda; checked by [`sem_jax.core.poisons.cuda.outside`][sem_jax.core.poisons.cuda.outside], the layer above), the filters'
  entries in [0, b] but one equal to 1; with the labels, the filter of the image's own class.
"""
from __future__ import annotations

import math

import numpy as np

INT8_MAX = 127


def linf(radius_levels: int) -> dict:
  return {"norm": "linf", "radius_levels": int(radius_levels)}


def l2(radius_levels: float, patch: int = 0) -> dict:
  out = {"norm": "l2", "radius_levels": float(radius_levels)}
  if patch:
    out["patch"] = int(patch)
  return out


def l0(pixels: int = 1) -> dict:
  return {"norm": "l0", "pixels": int(pixels)}


def conv(kernel_size: int, blur: float, filters=None) -> dict:
  out = {"norm": "conv", "kernel_size": int(kernel_size), "blur": float(blur)}
  if filters is not None:
    out["filters"] = np.asarray(filters, np.float64).tolist()
  return out


def storage_dtype(budget: dict) -> np.dtype:
  """int8 for every budget but l0 and conv (a pixel may move by up to 255 levels: int16)."""
  return np.dtype(np.int16 if budget["norm"] in ("l0", "conv") else np.int8)


def to_levels(delta) -> np.ndarray:
  """Noise in fractions of [0, 1] -> int8 pixel levels, rounded toward zero (so |level| <=
  |255 δ| entrywise and no norm grows), clipped to ±127."""
  q = np.trunc(np.asarray(delta, np.float64) * 255.0)
  return np.clip(q, -INT8_MAX, INT8_MAX).astype(np.int8)


def describe(budget: dict) -> str:
  """One phrase: 'L∞ <= 8 levels', 'L2 <= 332.6 levels per image, 8x8 patches', ..."""
  norm = budget.get("norm", "linf")
  if norm == "linf":
    return f"L∞ <= {budget['radius_levels']} levels"
  if norm == "l2":
    patch = f", constant on {budget['patch']}x{budget['patch']} patches" if budget.get("patch") else ""
    return f"L2 <= {budget['radius_levels']:.1f} levels per image{patch}"
  if norm == "conv":
    s = budget["kernel_size"]
    return f"class-wise {s}x{s} filters, entries <= {budget['blur']:g} and one 1 (CUDA)"
  return f"L0 <= {budget['pixels']} pixel(s) per image, set to 0 or 255"


def block_violations(budget: dict, noise: np.ndarray, clean_u8: np.ndarray | None = None,
                     labels: np.ndarray | None = None) -> int:
  """Number of images of the block (n, H, W, C) that break ``budget`` ([`outside`][outside])."""
  return int(outside(budget, noise, clean_u8, labels).sum())


def outside(budget: dict, noise: np.ndarray, clean_u8: np.ndarray | None = None,
            labels: np.ndarray | None = None) -> np.ndarray:
  """(n,) True for each image of the block (n, H, W, C) that breaks ``budget``. The l0 check
  needs the block's clean images (the published pixel must be 0 or 255). ``labels`` serve the
  conv check ([`sem_jax.core.poisons.cuda.outside`][sem_jax.core.poisons.cuda.outside]), which this layer cannot run."""
  norm = budget.get("norm", "linf")
  v = noise.astype(np.int32)
  n = len(v)
  if norm == "conv":
    raise ValueError("a conv budget is checked against its filters: "
                     "sem_jax.core.poisons.cuda.outside (sem_jax.run.specs.outside picks it)")
  if norm == "linf":
    return np.abs(v).reshape(n, -1).max(axis=1, initial=0) > budget["radius_levels"]
  if norm == "l2":
    bad = np.sqrt((v.astype(np.float64) ** 2).reshape(n, -1).sum(1)) > budget["radius_levels"] + 1e-9
    if budget.get("patch"):
      bad |= ~_patch_constant(v, budget["patch"])
    return bad
  if norm == "l0":
    moved = (v != 0).any(axis=-1)                                  # (n, H, W)
    bad = moved.reshape(n, -1).sum(1) > budget["pixels"]
    if clean_u8 is not None:
      published = np.clip(clean_u8.astype(np.int32) + v, 0, 255)
      extreme = ((published == 0) | (published == 255)).all(axis=-1)
      bad |= (moved & ~extreme).reshape(n, -1).any(1)
    return bad
  raise ValueError(f"unknown budget norm {norm!r}")


def _patch_constant(v: np.ndarray, p: int) -> np.ndarray:
  """(n,) True where every p x p square of the patch grid holds one value per channel."""
  n, h, w, c = v.shape
  gh, gw = math.ceil(h / p), math.ceil(w / p)
  padded = np.pad(v, ((0, 0), (0, gh * p - h), (0, gw * p - w), (0, 0)), mode="edge")
  cells = padded.reshape(n, gh, p, gw, p, c)
  return (cells == cells[:, :, :1, :, :1, :]).reshape(n, -1).all(1)


def max_abs_levels(noise: np.ndarray) -> int:
  """max |value| of an int8 table without int16 temporaries (min/max scan only)."""
  if noise.size == 0:
    return 0
  return max(-int(noise.min()), int(noise.max()))


def check_noise(noise: np.ndarray, radius_levels: float) -> None:
  """Raise ValueError unless noise is int8 with |value| <= radius (pixel levels)."""
  if noise.dtype != np.int8:
    raise ValueError(f"noise must be int8, got {noise.dtype}")
  m = max_abs_levels(noise)
  if m > radius_levels:
    raise ValueError(f"noise exceeds its radius: max |value| {m} > {radius_levels} levels")
