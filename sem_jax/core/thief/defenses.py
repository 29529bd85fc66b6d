"""What a data thief tries against unlearnable examples (docs/method.md, "Evaluation protocol").

Two kinds:

- Preprocessing of the published training images, applied once before training
  (uint8 in, uint8 out, pixel levels): the release's four OpenCV filters, computed as
  OpenCV computes them on 8-bit images (tested against ``opencv-python-headless``):
  ``cv2.blur(x, (3, 3))``, ``cv2.GaussianBlur(x, (3, 3), 0)``, ``cv2.medianBlur(x, 3)``,
  ``cv2.bilateralFilter(x, 9, 75, 75)``; grayscale (ITU-R BT.601 luma, replicated over
  the channels) and JPEG re-encoding (Pillow); ISS's two (Liu et al., ICML 2023:
  ``iss_gray``, ``iss_jpeg`` at quality 10); bit-depth reduction (``bdr``: torchvision's
  ``RandomPosterize(bits)``, APBench's BDR); ``standardize``: each image's channels moved to
  a fixed mean and spread.
- Per-batch training augmentations, pure and jittable on normalised images:
  cutout (a square set to 0, the mid-grey of ``x / 255 - 0.5``), COIN (every pixel
  resampled at a randomly displaced position, against convolution-based poisons), mixup and
  cutmix (a batch-level λ ~ Beta(α, α) and a permutation partner; they return
  soft-label pairs (y, y2, λ)).
"""
from __future__ import annotations

import functools
import io

import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.core import checks
from sem_jax.errors import SemJaxError

FILTERS = ("mean", "gaussian", "median", "bilateral")
PREPROCESS = FILTERS + ("grayscale", "jpeg", "iss_gray", "iss_jpeg", "bdr", "standardize")
GRAY = ("grayscale", "iss_gray")     # the victim trains (and is tested) on grayscale images
ISS_JPEG_QUALITY = 10                # ISS's JPEG quality
_CHUNK = 1024


def _shifted(x: jax.Array, radius: int, mode: str):
  """(N, H, W, C) -> {(dy, dx): x shifted by (dy, dx)} for |dy|, |dx| <= radius, borders
  padded by ``mode`` (numpy's "reflect" is OpenCV's BORDER_REFLECT_101, "edge" BORDER_REPLICATE)."""
  p = jnp.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode=mode)
  h, w = x.shape[1:3]
  return {(dy, dx): p[:, radius + dy:radius + dy + h, radius + dx:radius + dx + w]
          for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)}


@jax.jit
def _mean3(x):
  """cv2.blur(x, (3, 3)): the 3x3 sum s, round(s / 9) half up, reflect-101 borders."""
  s = sum(_shifted(x.astype(jnp.int32), 1, "reflect").values())
  return (2 * s + 9) // 18


@jax.jit
def _gauss121(x):
  """cv2.GaussianBlur(x, (3, 3), 0): kernel [1, 2, 1] / 4 in each direction, computed exactly
  in integers and rounded half up (OpenCV's bit-exact 8-bit path), reflect-101 borders."""
  w = (1, 2, 1)
  s = sum(w[dy + 1] * w[dx + 1] * v for (dy, dx), v in
          _shifted(x.astype(jnp.int32), 1, "reflect").items())
  return (s + 8) // 16


@jax.jit
def _gauss_sigma(x, k1):
  """3x3 Gaussian of standard deviation sigma > 0 (k1: the normalised 1-D kernel), float32."""
  return sum(k1[dy + 1] * k1[dx + 1] * v for (dy, dx), v in
             _shifted(x.astype(jnp.float32), 1, "reflect").items())


@jax.jit
def _median3(x):
  """cv2.medianBlur(x, 3): the median of the 3x3 window, replicated borders (exact)."""
  return jnp.median(jnp.stack(list(_shifted(x.astype(jnp.float32), 1, "edge").values())), axis=0)


@functools.partial(jax.jit, static_argnums=(1,))
def _bilateral(x, taps, color_table):
  """cv2.bilateralFilter(x, d, σc, σs) on 8-bit images: over the circular window ``taps``
  ((dy, dx, space weight) with dy² + dx² <= (d // 2)²), weights space weight times
  color_table[Σ_channels |x_n - x|] (float32, as OpenCV's look-up tables), the weighted mean
  rounded to nearest; reflect-101 borders."""
  r = max(max(abs(dy), abs(dx)) for dy, dx, _ in taps)
  views = _shifted(x.astype(jnp.int32), r, "reflect")
  xi = x.astype(jnp.int32)
  num = jnp.zeros(x.shape, jnp.float32)
  den = jnp.zeros(x.shape[:-1] + (1,), jnp.float32)
  for dy, dx, sw in taps:
    n = views[(dy, dx)]
    wgt = jnp.float32(sw) * color_table[jnp.sum(jnp.abs(n - xi), axis=-1, keepdims=True)]
    num = num + n.astype(jnp.float32) * wgt
    den = den + wgt
  return num * (1.0 / den)


def bilateral_taps(diameter: int, sigma_space: float) -> tuple:
  """OpenCV's bilateral window: (dy, dx, float32 exp(-r² / (2σs²))) for r = √(dy² + dx²) <= d // 2."""
  r = diameter // 2
  out = []
  for dy in range(-r, r + 1):
    for dx in range(-r, r + 1):
      rr = np.sqrt(dy * dy + dx * dx)
      if rr <= r:
        out.append((dy, dx, float(np.float32(np.exp(rr * rr * (-0.5 / sigma_space ** 2))))))
  return tuple(out)


def _color_table(channels: int, sigma_color: float) -> np.ndarray:
  """float32 exp(-i² / (2σc²)) for every summed absolute colour difference i."""
  i = np.arange(256 * channels, dtype=np.float64)
  return np.exp(i * i * (-0.5 / sigma_color ** 2)).astype(np.float32)


def _chunked(fn, images: np.ndarray, *args) -> np.ndarray:
  """Apply ``fn`` (uint8 batch -> values) in chunks; round half to even, clip, uint8."""
  out = np.empty_like(images)
  for s in range(0, len(images), _CHUNK):
    y = fn(jnp.asarray(images[s:s + _CHUNK]), *args)
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


def bit_depth(images: np.ndarray, bits: int) -> np.ndarray:
  """Keep the ``bits`` most significant bits of every level (x & (255 << (8 - bits))): at
  2 bits the levels 0, 64, 128, 192."""
  if not 1 <= bits <= 8:
    raise SemJaxError(f"bdr_bits must be in [1, 8], got {bits}")
  return images & np.uint8((0xFF << (8 - bits)) & 0xFF)


def standardize(images: np.ndarray, mean: float, std: float) -> np.ndarray:
  """Per image and channel: (x - its mean) / its standard deviation (at least 1 level) * std
  + mean, rounded half to even and clipped to [0, 255]; ``mean`` and ``std`` in pixel levels."""
  out = np.empty_like(images)
  for s in range(0, len(images), _CHUNK):
    x = images[s:s + _CHUNK].astype(np.float32)
    mu = x.mean(axis=(1, 2), keepdims=True)
    sd = np.maximum(x.std(axis=(1, 2), keepdims=True), 1.0)
    out[s:s + _CHUNK] = np.clip(np.round((x - mu) / sd * std + mean), 0, 255).astype(np.uint8)
  return out


def preprocess(images: np.ndarray, defenses, *, gaussian_sigma: float = 0.0,
               bilateral_diameter: int = 9, bilateral_sigma_color: float = 75.0,
               bilateral_sigma_space: float = 75.0, jpeg_quality: int = 10, bdr_bits: int = 2,
               standardize_mean: float = 128.0, standardize_std: float = 64.0) -> np.ndarray:
  """Apply the preprocessing defenses named in ``defenses`` (in PREPROCESS order) to uint8 images.

  ``gaussian_sigma``: 3x3 Gaussian σ in pixels (0: OpenCV's 3x3 default kernel);
  ``bilateral_*``: window diameter (pixels), colour σ (pixel levels), space σ (pixels);
  ``jpeg_quality``: 1..95; ``bdr_bits``: bits kept; ``standardize_*``: pixel levels.
  """
  x = images
  for d in PREPROCESS:
    if d not in defenses:
      continue
    if d == "mean":
      x = _chunked(_mean3, x)
    elif d == "gaussian" and gaussian_sigma == 0:
      x = _chunked(_gauss121, x)
    elif d == "gaussian":
      k1 = np.exp(-np.arange(-1, 2) ** 2 / (2 * gaussian_sigma ** 2))
      x = _chunked(_gauss_sigma, x, jnp.asarray(k1 / k1.sum(), jnp.float32))
    elif d == "median":
      x = _chunked(_median3, x)
    elif d == "bilateral":
      x = _chunked(_bilateral, x, bilateral_taps(bilateral_diameter, bilateral_sigma_space),
                   jnp.asarray(_color_table(x.shape[-1], bilateral_sigma_color)))
    elif d in GRAY:
      x = grayscale(x)
    elif d == "jpeg":
      x = jpeg(x, jpeg_quality)
    elif d == "iss_jpeg":
      x = jpeg(x, ISS_JPEG_QUALITY)
    elif d == "bdr":
      x = bit_depth(x, bdr_bits)
    elif d == "standardize":
      x = standardize(x, standardize_mean, standardize_std)
  return x


def test_view(images: np.ndarray, defenses, *, standardize_mean: float = 128.0,
              standardize_std: float = 64.0) -> np.ndarray:
  """The clean test images as the victim sees them: grayscale where it trained on grayscale,
  standardised where it standardises (both are per-image input transforms); else as they are."""
  x = images
  if set(GRAY) & set(defenses):
    x = grayscale(x)
  if "standardize" in defenses:
    x = standardize(x, standardize_mean, standardize_std)
  return x


# ----------------------------------------------------------------------------- per batch
def _wrapped(c: jax.Array, n: int) -> jax.Array:
  """Coordinates as scipy.ndimage's ``mode="wrap"`` reads them: inside [0, n - 1] as they
  are, outside modulo n - 1 (the first and last rows overlap)."""
  if n < 2:
    return jnp.zeros_like(c)
  return jnp.where((c >= 0) & (c <= n - 1), c, jnp.mod(c, n - 1))


def coin(x: jax.Array, keys: jax.Array, alpha: float) -> jax.Array:
  """COIN (Li et al., "Detecting and Corrupting Convolution-based Unlearnable Examples", AAAI
  2025; read from wxldragon/COIN, ``COIN_trans``): each image resampled, bilinearly, at its
  pixel grid moved by independent U[-alpha, alpha] row and column offsets per pixel (one
  displacement for every channel), borders as scipy's ``map_coordinates(order=1,
  mode="wrap")``, then clipped to [0, 1] and truncated to whole levels (the release's uint8
  cast). alpha in pixels [2.0: the release's severity 4]. x: (B, H, W, C) normalised
  (``x / 255 - 0.5``); keys: (B,). Training images only, like the release's transform."""
  checks.normalised_images(x, "coin", check_range=False)   # after standardize, say
  keys = checks.sample_keys(keys, x.shape[0], "coin")
  h, w = x.shape[1:3]
  if not (np.isfinite(alpha) and 0 < alpha < max(h, w)):
    raise SemJaxError(f"coin: alpha is a displacement in pixels, finite, > 0 and below the "
                      f"image side {max(h, w)}, got {alpha}")

  def one(img, key):
    ky, kx = jax.random.split(key)
    rows = _wrapped(jnp.arange(h, dtype=jnp.float32)[:, None]
                    + jax.random.uniform(ky, (h, w), minval=-alpha, maxval=alpha), h)
    cols = _wrapped(jnp.arange(w, dtype=jnp.float32)[None, :]
                    + jax.random.uniform(kx, (h, w), minval=-alpha, maxval=alpha), w)
    r0, c0 = jnp.floor(rows), jnp.floor(cols)
    fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
    r0, c0 = r0.astype(jnp.int32), c0.astype(jnp.int32)
    r1, c1 = jnp.minimum(r0 + 1, h - 1), jnp.minimum(c0 + 1, w - 1)
    v = img + 0.5
    out = ((1 - fr) * ((1 - fc) * v[r0, c0] + fc * v[r0, c1])
           + fr * ((1 - fc) * v[r1, c0] + fc * v[r1, c1]))
    return jnp.floor(jnp.clip(out, 0.0, 1.0) * 255.0) / 255.0 - 0.5

  return jax.vmap(one)(x, keys)


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
