"""How visible published images are: PSNR and SSIM against the clean image, and the per-class
mean noise per channel (a colour cast). Host-side numpy on uint8 pixel levels.

SSIM is Wang et al. (2004): an 11-tap Gaussian window of σ 1.5 px (narrower on images under
11 px), K1 = 0.01, K2 = 0.03, L = 255, computed per channel over the window's valid positions
and averaged over channels and positions.
"""
from __future__ import annotations

import math

import numpy as np

PSNR_IDENTICAL = 99.99   # dB recorded for identical images (the MSE is 0)


def psnr(clean: np.ndarray, published: np.ndarray) -> float:
  """Peak signal-to-noise ratio in dB, ``10 log10(255² / MSE)`` over every pixel and channel."""
  mse = float(np.mean((clean.astype(np.float64) - published.astype(np.float64)) ** 2))
  return PSNR_IDENTICAL if mse == 0 else min(PSNR_IDENTICAL, 10 * math.log10(255.0 ** 2 / mse))


def _window(side: int) -> np.ndarray:
  taps = min(11, side if side % 2 else side - 1)
  t = np.arange(taps) - taps // 2
  w = np.exp(-t ** 2 / (2 * 1.5 ** 2))
  return w / w.sum()


def _filter(x: np.ndarray, w: np.ndarray) -> np.ndarray:
  """``x`` (H, W, C) filtered by the separable window ``w`` on both axes, valid positions only."""
  k = len(w)
  x = np.lib.stride_tricks.sliding_window_view(x, k, axis=0) @ w
  return np.lib.stride_tricks.sliding_window_view(x, k, axis=1) @ w


def ssim(clean: np.ndarray, published: np.ndarray) -> float:
  """Structural similarity of two uint8 (H, W, C) images, in [-1, 1] (1: identical)."""
  a, b = clean.astype(np.float64), published.astype(np.float64)
  w = _window(min(a.shape[:2]))
  c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
  mu_a, mu_b = _filter(a, w), _filter(b, w)
  var_a = _filter(a * a, w) - mu_a ** 2
  var_b = _filter(b * b, w) - mu_b ** 2
  cov = _filter(a * b, w) - mu_a * mu_b
  s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
  return float(s.mean())


def class_mean_noise(noise, labels: np.ndarray, num_classes: int, block: int = 256) -> np.ndarray:
  """(num_classes, C): the mean noise of each class per channel, in pixel levels, read
  ``block`` rows of the int8 table at a time (summed without a float copy of the block)."""
  sums = np.zeros((num_classes, noise.shape[-1]), np.float64)
  for s in range(0, len(labels), block):
    rows = np.asarray(noise[s:s + block]).mean(axis=(1, 2), dtype=np.float64)
    np.add.at(sums, np.asarray(labels[s:s + block]), rows)
  counts = np.maximum(np.bincount(labels, minlength=num_classes), 1)[:, None]
  return sums / counts


def summary(psnrs, ssims, cast: np.ndarray, names, class_names) -> dict:
  """The visibility record of an export: mean and worst PSNR / SSIM (naming the worst image),
  and the per-class mean noise with its largest channel."""
  psnrs, ssims = np.asarray(psnrs, np.float64), np.asarray(ssims, np.float64)
  worst_cls, worst_ch = np.unravel_index(int(np.argmax(np.abs(cast))), cast.shape)
  return {
      "psnr_db_mean": round(float(psnrs.mean()), 4), "psnr_db_worst": round(float(psnrs.min()), 4),
      "psnr_worst_image": names[int(np.argmin(psnrs))],
      "ssim_mean": round(float(ssims.mean()), 6), "ssim_worst": round(float(ssims.min()), 6),
      "ssim_worst_image": names[int(np.argmin(ssims))],
      "class_mean_noise_levels": {str(class_names[c]): [round(float(v), 4) for v in cast[c]]
                                  for c in range(len(cast))},
      "largest_colour_cast": {"class": str(class_names[worst_cls]), "channel": int(worst_ch),
                              "levels": round(float(cast[worst_cls, worst_ch]), 4)},
  }


def line(vis: dict) -> str:
  """One line for a log or ``verify``: mean and worst PSNR and SSIM, the largest cast."""
  cast = vis["largest_colour_cast"]
  return (f"PSNR mean {vis['psnr_db_mean']:.2f} dB, worst {vis['psnr_db_worst']:.2f} dB "
          f"({vis['psnr_worst_image']}); SSIM mean {vis['ssim_mean']:.4f}, worst "
          f"{vis['ssim_worst']:.4f} ({vis['ssim_worst_image']}); largest colour cast "
          f"{cast['levels']:+.2f} levels (class {cast['class']}, channel {cast['channel']})")
