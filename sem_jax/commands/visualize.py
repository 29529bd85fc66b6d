"""``visualize``: a PNG grid of clean | noise | protected images for a few classes."""
from __future__ import annotations

import os

import numpy as np

from sem_jax.core.units import protect
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs
from sem_jax.run.artifacts import load_run


def visualize(workdir: str, out: str, classes: int = 5, per_class: int = 2, scale: int = 0,
              log=print) -> str:
  """A PNG grid: rows of (clean | noise scaled (δ+ε)/(2ε) | protected) for a few classes."""
  from PIL import Image
  run = load_run(workdir)
  ds = run.dataset
  eps = max(1, run.manifest.radius_levels)
  rows = []
  for c in range(min(classes, ds.num_classes)):
    for i in np.flatnonzero(ds.train_labels == c)[:per_class]:
      clean = ds.train_images[i]
      noise = np.clip((run.noise[i].astype(np.float32) + eps) / (2 * eps) * 255, 0, 255)
      rows.append(np.concatenate([clean, noise.astype(np.uint8), protect(clean, run.noise[i])], 1))
  if not rows:
    raise SemJaxError("nothing to draw")
  grid = np.concatenate(rows, 0)
  scale = scale or max(1, 128 // ds.image_shape[0])
  grid = grid.repeat(scale, 0).repeat(scale, 1)
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if fs.isdir(out):
    raise SemJaxError(f"visualize --out {out} is a directory; give a .png file path")
  atomic.make_dir(os.path.dirname(fs.abspath(out)), "output directory")
  try:
    atomic.atomic_write(out, lambda f: img.save(f, format="PNG"))
  except OSError as e:
    raise SemJaxError(f"cannot write {out}: {e.strerror or e}") from None
  log(f"wrote {out}: {len(rows)} rows of clean | noise | protected ({img.size[0]}x{img.size[1]})")
  return out
