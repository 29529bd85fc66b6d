"""One-pixel shortcut (OPS; Wu et al., "One-pixel shortcut: on the learning preference of deep
neural networks", ICLR 2023; docs/method.md, "The field's other attacks").

Per class k, the pixel position p and the colour c (each channel 0 or 1: 2^C colours) that
most separate it: the largest ``mean / std`` of |c - x[p]| over the class's images and
channels (images in fractions of [0, 1]). A (position, colour) pair one class took is not
offered to the later classes. Every image of class k then shows colour c at p: its noise
is ``255 c - x[p]`` there (all channels) and 0 elsewhere, up to ±255 levels (stored as int16).
"""
from __future__ import annotations

import numpy as np


def colours(channels: int) -> np.ndarray:
  """(2^C, C) every corner colour of [0, 1]^C, channel 0 the most significant bit."""
  codes = np.arange(2 ** channels)
  return ((codes[:, None] >> np.arange(channels - 1, -1, -1)) & 1).astype(np.float64)


def scores(images_u8: np.ndarray) -> np.ndarray:
  """(2^C, H, W) mean / std of |c - x[p]| over a class's images and channels (float64).

  A constant |c - x[p]| (std 0) scores +inf when its mean is positive (a perfect separator)
  and 0 when it is 0 (the colour the pixel already has)."""
  x = images_u8.astype(np.float64) / 255.0                    # (n, H, W, C)
  out = np.empty((2 ** x.shape[-1], *x.shape[1:3]))
  for k, c in enumerate(colours(x.shape[-1])):
    d = np.abs(c - x)
    mean, std = d.mean(axis=(0, 3)), d.std(axis=(0, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
      out[k] = np.where(std > 0, mean / np.where(std > 0, std, 1.0),
                        np.where(mean > 0, np.inf, 0.0))
  return out


def search(images_u8: np.ndarray, labels: np.ndarray, num_classes: int) -> list[tuple]:
  """Per class (row, column, colour code): the highest-scoring pair not taken by an earlier
  class (ties: the lowest colour code, then row, then column). A class without images gets
  the first free pair of an all-zero score."""
  taken: set[tuple] = set()
  out = []
  for k in range(num_classes):
    members = images_u8[labels == k]
    s = scores(members) if len(members) else np.zeros((2 ** images_u8.shape[-1],
                                                      *images_u8.shape[1:3]))
    order = np.argsort(-s, axis=None, kind="stable")
    for flat in order:
      code, r, c = np.unravel_index(flat, s.shape)
      pair = (int(r), int(c), int(code))
      if pair not in taken:
        taken.add(pair)
        out.append(pair)
        break
  return out


def noise(images_u8: np.ndarray, labels: np.ndarray, chosen: list[tuple]) -> np.ndarray:
  """(N, H, W, C) int16 pixel levels: ``255 c - x[p]`` at each image's class pixel, else 0."""
  out = np.zeros(images_u8.shape, np.int16)
  table = colours(images_u8.shape[-1])
  for k, (r, c, code) in enumerate(chosen):
    rows = np.flatnonzero(labels == k)
    target = (255 * table[code]).astype(np.int16)
    out[rows, r, c, :] = target - images_u8[rows, r, c, :].astype(np.int16)
  return out
