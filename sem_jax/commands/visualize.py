"""``visualize``: a PNG grid of clean | noise | protected images for a few classes."""
from __future__ import annotations

import os

import numpy as np

from sem_jax.commands.formats import class_dir
from sem_jax.core.units import protect
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs
from sem_jax.run.artifacts import load_run


def visualize(workdir: str, out: str, classes: int = 5, per_class: int = 2, scale: int = 0,
              log=print) -> str:
  """A PNG grid: rows of (clean | noise scaled (δ+ε)/(2ε) | protected) for a few classes, the
  columns named in a header and each row by its class and dataset index (RGB)."""
  from PIL import Image
  run = load_run(workdir)
  ds = run.dataset
  eps = max(1, run.manifest.radius_levels)
  rows, labels = [], []
  for c in range(min(classes, ds.num_classes)):
    for i in np.flatnonzero(ds.train_labels == c)[:per_class]:
      labels.append(f"{class_dir(ds, c)} #{i}")
      clean = ds.train_images[i]
      noise = np.clip((run.noise[i].astype(np.float32) + eps) / (2 * eps) * 255, 0, 255)
      rows.append(np.concatenate([clean, noise.astype(np.uint8), protect(clean, run.noise[i])], 1))
  if not rows:
    raise SemJaxError("nothing to draw")
  grid = np.concatenate(rows, 0)
  scale = scale or max(1, 128 // ds.image_shape[0])
  grid = grid.repeat(scale, 0).repeat(scale, 1)
  img = _labelled(Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).convert("RGB"),
                  labels, ds.image_shape[1] * scale, ds.image_shape[0] * scale, eps)
  if fs.isdir(out):
    raise SemJaxError(f"visualize --out {out} is a directory; give a .png file path")
  atomic.make_dir(os.path.dirname(fs.abspath(out)), "output directory")
  try:
    atomic.atomic_write(out, lambda f: img.save(f, format="PNG"))
  except OSError as e:
    raise SemJaxError(f"cannot write {out}: {e.strerror or e}") from None
  log(f"wrote {out}: {len(rows)} rows of clean | noise | protected ({img.size[0]}x{img.size[1]})")
  return out


LABEL_W, HEADER_H = 96, 16   # px of the row-label column and of the column-header strip


def _labelled(grid, labels: list[str], tile_w: int, tile_h: int, eps: int):
  """``grid`` with a header naming its three columns and a column naming each row (class and
  dataset index), on white."""
  from PIL import Image, ImageDraw
  canvas = Image.new("RGB", (LABEL_W + grid.size[0], HEADER_H + grid.size[1]), "white")
  canvas.paste(grid, (LABEL_W, HEADER_H))
  draw = ImageDraw.Draw(canvas)
  for k, name in enumerate(("clean", f"noise (±{eps} levels, scaled)", "protected")):
    draw.text((LABEL_W + k * tile_w + 2, 2), name, fill="black")
  for r, name in enumerate(labels):
    draw.text((2, HEADER_H + r * tile_h + tile_h // 2 - 5), name[:15], fill="black")
  return canvas
