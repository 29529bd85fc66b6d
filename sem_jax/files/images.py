"""Image files: written atomically, read into uint8 arrays (Pillow)."""
from __future__ import annotations

import numpy as np

from sem_jax.files import atomic, fs


def save_png(path: str, image: np.ndarray) -> None:
  """Write a uint8 (H, W, 1 or 3) image as a PNG, atomically."""
  from PIL import Image
  arr = image[..., 0] if image.shape[-1] == 1 else image
  atomic.atomic_write(path, lambda f: Image.fromarray(arr).save(f, format="PNG"))


def read_png(path: str, channels: int) -> np.ndarray:
  """An image file as uint8 (H, W, channels), converted to grey (1) or RGB (3)."""
  from PIL import Image
  with fs.open(path, "rb") as f, Image.open(f) as im:
    arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), np.uint8)
  return arr[..., None] if channels == 1 else arr
