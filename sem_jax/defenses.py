"""What a data thief tries against unlearnable examples (SPEC section 6).

Two kinds:

- Preprocessing of the published training images, applied once before training
  (uint8 in, uint8 out, pixel levels): 3x3 mean, 3x3 Gaussian, 3x3 median and
  3x3 bilateral filters (borders reflected, as OpenCV's default), grayscale
  (ITU-R BT.601 luma, replicated over the channels) and JPEG re-encoding (Pillow).
- Per-batch training augmentations, pure and jittable on normalised images:
  cutout (a square set to 0, the mid-grey of ``x / 255 - 0.5``), mixup and
  cutmix (a batch-level λ ~ Beta(α, α) and a permutation partner; they return
  soft-label pairs (y, y2, λ)).
"""
from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.errors import SemJaxError

FILTERS = ("mean", "gaussian", "median", "bilateral")
PREPROCESS = FILTERS + ("grayscale", "jpeg")
_CHUNK = 1024


def _neighbours(x: jax.Array) -> jax.Array:
  """(N, H, W, C) float -> (9, N, H, W, C): the 3x3 neighbourhood with reflected borders."""
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  h, w = x.shape[1:3]
  return jnp.stack([p[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])


_OFFSETS = np.array([(dy - 1, dx - 1) for dy in range(3) for dx in range(3)], np.float32)


def _spatial_weights(sigma: float) -> np.ndarray:
  w = np.exp(-(_OFFSETS ** 2).sum(1) / (2 * sigma ** 2))
  return (w / w.sum()).astype(np.float32)


@jax.jit
def _mean3(x):
  return _neighbours(x).mean(0)


@jax.jit
def _weighted3(x, w):
  return jnp.tensordot(w, _neighbours(x), axes=1)


@jax.jit
def _median3(x):
  return jnp.median(_neighbours(x), axis=0)


@jax.jit
def _bilateral3(x, sigma_color, w_space):
  n = _neighbours(x)                                           # (9, N, H, W, C)
  d2 = jnp.sum((n - x[None]) ** 2, axis=-1, keepdims=True)     # colour distance over channels
  w = w_space[:, None, None, None, None] * jnp.exp(-d2 / (2 * sigma_color ** 2))
  return jnp.sum(w * n, 0) / jnp.sum(w, 0)


def _chunked(fn, images: np.ndarray, *args) -> np.ndarray:
  out = np.empty_like(images)
  for s in range(0, len(images), _CHUNK):
    y = fn(jnp.asarray(images[s:s + _CHUNK], jnp.float32), *args)
    out[s:s + _CHUNK] = np.asarray(jnp.clip(jnp.round(y), 0, 255)).astype(np.uint8)
  return out


def grayscale(images: np.ndarray) -> np.ndarray:
  """BT.601 luma round(0.299 R + 0.587 G + 0.114 B), replicated to every channel; 1 channel: as is."""
  if images.shape[-1] == 1:
    return images.copy()
  if images.shape[-1] != 3:
    raise SemJaxError(f"grayscale needs 1 or 3 channels, got {images.shape[-1]}")
  out = np.empty_like(images)
  for s in range(0, len(images), _CHUNK):
    luma = images[s:s + _CHUNK].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out[s:s + _CHUNK] = np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]
  return out


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
  """Re-encode every image as JPEG at ``quality`` (Pillow, 4:2:0 chroma) and decode it."""
  from PIL import Image
  out = np.empty_like(images)
  mode = "L" if images.shape[-1] == 1 else "RGB"
  for i, im in enumerate(images):
    buf = io.BytesIO()
    Image.fromarray(im[..., 0] if mode == "L" else im, mode).save(buf, format="JPEG",
                                                                   quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as dec:
      arr = np.asarray(dec.convert(mode), np.uint8)
    out[i] = arr[..., None] if mode == "L" else arr
  return out


def preprocess(images: np.ndarray, defenses, cfg) -> np.ndarray:
  """Apply the preprocessing defenses named in ``defenses`` (in PREPROCESS order) to uint8 images.

  ``cfg`` supplies gaussian_sigma, bilateral_sigma_color (pixel levels),
  bilateral_sigma_space (pixels) and jpeg_quality.
  """
  x = images
  for d in PREPROCESS:
    if d not in defenses:
      continue
    if d == "mean":
      x = _chunked(_mean3, x)
    elif d == "gaussian":
      x = _chunked(_weighted3, x, jnp.asarray(_spatial_weights(cfg.gaussian_sigma)))
    elif d == "median":
      x = _chunked(_median3, x)
    elif d == "bilateral":
      x = _chunked(_bilateral3, x, jnp.float32(cfg.bilateral_sigma_color),
                   jnp.asarray(_spatial_weights(cfg.bilateral_sigma_space)))
    elif d == "grayscale":
      x = grayscale(x)
    elif d == "jpeg":
      x = jpeg(x, cfg.jpeg_quality)
  return x


# ----------------------------------------------------------------------------- per batch
def cutout(x: jax.Array, keys: jax.Array, size: int) -> jax.Array:
  """Per sample, set a size x size square (centre uniform over the image, clipped at the
  borders) to 0 (mid-grey). x: (B, H, W, C) normalised; keys: (B,)."""
  h, w = x.shape[1:3]

  def one(img, key):
    ky, kx = jax.random.split(key)
    cy = jax.random.randint(ky, (), 0, h)
    cx = jax.random.randint(kx, (), 0, w)
    rows = jnp.arange(h)[:, None]
    cols = jnp.arange(w)[None, :]
    inside = ((rows >= cy - size // 2) & (rows < cy - size // 2 + size)
              & (cols >= cx - size // 2) & (cols < cx - size // 2 + size))
    return jnp.where(inside[..., None], 0.0, img)

  return jax.vmap(one)(x, keys)


def mixup(x: jax.Array, y: jax.Array, key: jax.Array, alpha: float):
  """x' = λ x + (1-λ) x[π], one λ ~ Beta(α, α) and permutation π per batch.

  Returns (x', y, y[π], λ): train on λ CE(y) + (1-λ) CE(y[π]).
  """
  k_lam, k_perm = jax.random.split(key)
  lam = jax.random.beta(k_lam, alpha, alpha)
  perm = jax.random.permutation(k_perm, x.shape[0])
  return lam * x + (1 - lam) * x[perm], y, y[perm], lam


def cutmix(x: jax.Array, y: jax.Array, key: jax.Array, alpha: float):
  """Paste a box of x[π] into x: box area (1-λ)HW for λ ~ Beta(α, α), centre uniform, clipped.

  Returns (x', y, y[π], λ') with λ' = 1 - (clipped box area) / HW.
  """
  h, w = x.shape[1:3]
  k_lam, k_perm, ky, kx = jax.random.split(key, 4)
  lam = jax.random.beta(k_lam, alpha, alpha)
  perm = jax.random.permutation(k_perm, x.shape[0])
  cut = jnp.sqrt(1.0 - lam)
  bh, bw = jnp.floor(h * cut).astype(jnp.int32), jnp.floor(w * cut).astype(jnp.int32)
  cy, cx = jax.random.randint(ky, (), 0, h), jax.random.randint(kx, (), 0, w)
  y0, y1 = jnp.clip(cy - bh // 2, 0, h), jnp.clip(cy + bh - bh // 2, 0, h)
  x0, x1 = jnp.clip(cx - bw // 2, 0, w), jnp.clip(cx + bw - bw // 2, 0, w)
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  box = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)
  mixed = jnp.where(box[None, :, :, None], x[perm], x)
  lam_eff = 1.0 - ((y1 - y0) * (x1 - x0)).astype(jnp.float32) / (h * w)
  return mixed, y, y[perm], lam_eff
