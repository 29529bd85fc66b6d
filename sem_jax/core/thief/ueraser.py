"""UEraser's augmentations (Qin et al., "Learning the unlearnable: adversarial augmentations
suppress unlearnable example attacks", 2023; APBench ``defense/ueraser.py``), pure and jittable.

One draw on an image in [0, 1] (H, W, C), every random choice from the image's own key:

1. plasma brightness: x + i (2p - 1), p a diamond-square fractal map in [0, 1] of roughness
   U(0.3, 0.7) shared by the channels, i ~ U(0.5, 1.0) (kornia ``RandomPlasmaBrightness``);
2. plasma contrast: (x - 0.5) 4p + 0.5, p per channel, roughness U(0.3, 0.7)
   (``RandomPlasmaContrast``);
3. channel shuffle with probability 1/2;
4. TrivialAugment: one of 12 operations, uniformly, at a uniform magnitude (kornia's default
   policy): auto-contrast, equalise, rotate ±30°, posterise to 1..4 bits, solarise at t ∈ [0, 1],
   contrast ×[0.1, 1.9], brightness +[-0.9, 0.9], sharpness [0.1, 1.9], shear x / y ±0.3,
   translate x / y ±0.5 of the side (black fill);

each step clipped to [0, 1]. The training rule, the maximum loss over K draws, is in
[`sem_jax.core.thief.victim`][sem_jax.core.thief.victim].
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

N_OPS = 12


def diamond_square(key: jax.Array, size: int, roughness: jax.Array) -> jax.Array:
  """A (size, size) plasma fractal in [0, 1]: from a random 2x2 grid, each level doubles the
  grid; new points are the mean of their grid neighbours plus uniform noise of amplitude
  roughness^level; the map is cropped to size and min-max normalised."""
  levels = int(np.ceil(np.log2(max(size - 1, 1))))
  key, k0 = jax.random.split(key)
  g = jax.random.uniform(k0, (2, 2), minval=-1.0, maxval=1.0)
  for level in range(1, levels + 1):
    key, kc, ke = jax.random.split(key, 3)
    amp = roughness ** level
    m = g.shape[0]
    centre = 0.25 * (g[:-1, :-1] + g[1:, :-1] + g[:-1, 1:] + g[1:, 1:])
    centre = centre + amp * jax.random.uniform(kc, centre.shape, minval=-1.0, maxval=1.0)
    n = 2 * m - 1
    out = jnp.zeros((n, n)).at[::2, ::2].set(g).at[1::2, 1::2].set(centre)
    # edge midpoints: the mean of the two grid points along the edge and the centres beside it
    known = jnp.zeros((n, n)).at[::2, ::2].set(1.0).at[1::2, 1::2].set(1.0)
    pad_v = jnp.pad(out, 1)
    pad_k = jnp.pad(known, 1)
    total = pad_v[:-2, 1:-1] + pad_v[2:, 1:-1] + pad_v[1:-1, :-2] + pad_v[1:-1, 2:]
    count = pad_k[:-2, 1:-1] + pad_k[2:, 1:-1] + pad_k[1:-1, :-2] + pad_k[1:-1, 2:]
    edge = total / jnp.maximum(count, 1.0)
    edge = edge + amp * jax.random.uniform(ke, (n, n), minval=-1.0, maxval=1.0)
    g = jnp.where(known > 0, out, edge)
  g = g[:size, :size]
  lo, hi = g.min(), g.max()
  return (g - lo) / jnp.maximum(hi - lo, 1e-6)


def _luma(x):
  return x.mean(axis=-1) if x.shape[-1] != 3 else x @ jnp.array([0.299, 0.587, 0.114])


def _affine(x, matrix):
  """x sampled at matrix @ (row, col) - centre (+ offset in the last column), bilinear, black
  outside."""
  h, w, c = x.shape
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                            indexing="ij")
  cy, cx = (h - 1) / 2, (w - 1) / 2
  src_r = matrix[0, 0] * (rows - cy) + matrix[0, 1] * (cols - cx) + matrix[0, 2] + cy
  src_c = matrix[1, 0] * (rows - cy) + matrix[1, 1] * (cols - cx) + matrix[1, 2] + cx
  sample = lambda ch: jax.scipy.ndimage.map_coordinates(ch, [src_r, src_c], order=1, cval=0.0)
  return jnp.stack([sample(x[..., i]) for i in range(c)], axis=-1)


def _equalize(x):
  """Histogram equalisation of each channel over 256 levels."""
  levels = jnp.round(x * 255).astype(jnp.int32)

  def one(ch):
    cdf = jnp.cumsum(jnp.bincount(ch.ravel(), length=256))
    lo = jnp.min(jnp.where(cdf > 0, cdf, cdf[-1]))
    lut = jnp.clip((cdf - lo) / jnp.maximum(cdf[-1] - lo, 1) * 255, 0, 255)
    return jnp.where(cdf[-1] > lo, lut[ch], ch) / 255.0

  return jnp.stack([one(levels[..., i]) for i in range(x.shape[-1])], axis=-1)


def _sharpness(x, s):
  k = jnp.array([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
  p = jnp.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
  h, w = x.shape[:2]
  smooth = sum(k[i, j] * p[i:i + h, j:j + w] for i in range(3) for j in range(3))
  return smooth + s * (x - smooth)


def trivial_op(x: jax.Array, op: jax.Array, u: jax.Array) -> jax.Array:
  """TrivialAugment's operation ``op`` (0..11) at magnitude fraction u ∈ [0, 1] on x in [0, 1]."""
  h, w = x.shape[:2]
  lerp = lambda lo, hi: lo + (hi - lo) * u
  eye = jnp.eye(2, 3)

  def rotate(x):
    a = jnp.deg2rad(lerp(-30.0, 30.0))
    return _affine(x, jnp.array([[jnp.cos(a), -jnp.sin(a), 0.0], [jnp.sin(a), jnp.cos(a), 0.0]]))

  ops = [
      lambda x: (x - x.min((0, 1))) / jnp.maximum(x.max((0, 1)) - x.min((0, 1)), 1e-6),
      _equalize,
      rotate,
      lambda x: jnp.floor(x * 255 / 2.0 ** (8 - jnp.floor(lerp(1.0, 4.999)))) *
      2.0 ** (8 - jnp.floor(lerp(1.0, 4.999))) / 255,
      lambda x: jnp.where(x >= u, 1.0 - x, x),
      lambda x: x * lerp(0.1, 1.9),
      lambda x: x + lerp(-0.9, 0.9),
      lambda x: _sharpness(x, lerp(0.1, 1.9)),
      lambda x: _affine(x, eye.at[1, 0].set(lerp(-0.3, 0.3))),
      lambda x: _affine(x, eye.at[0, 1].set(lerp(-0.3, 0.3))),
      lambda x: _affine(x, eye.at[1, 2].set(lerp(-0.5, 0.5) * w)),
      lambda x: _affine(x, eye.at[0, 2].set(lerp(-0.5, 0.5) * h)),
  ]
  return jnp.clip(jax.lax.switch(op, ops, x), 0.0, 1.0)


def ueraser_one(x: jax.Array, key: jax.Array) -> jax.Array:
  """One UEraser draw of one image x (H, W, C) in [0, 1]; same shape, values in [0, 1]."""
  h, w, c = x.shape
  ks = jax.random.split(key, 9)
  size = max(h, w)
  rough_b = jax.random.uniform(ks[0], (), minval=0.3, maxval=0.7)
  intensity = jax.random.uniform(ks[1], (), minval=0.5, maxval=1.0)
  p = diamond_square(ks[2], size, rough_b)[:h, :w, None]
  x = jnp.clip(x + intensity * (2 * p - 1), 0.0, 1.0)
  rough_c = jax.random.uniform(ks[3], (), minval=0.3, maxval=0.7)
  pc = jnp.stack([diamond_square(k, size, rough_c)[:h, :w] for k in jax.random.split(ks[4], c)],
                 axis=-1)
  x = jnp.clip((x - 0.5) * 4 * pc + 0.5, 0.0, 1.0)
  shuffled = x[..., jax.random.permutation(ks[5], c)]
  x = jnp.where(jax.random.bernoulli(ks[6]), shuffled, x)
  op = jax.random.randint(ks[7], (), 0, N_OPS)
  return trivial_op(x, op, jax.random.uniform(ks[8], ()))


def ueraser(x: jax.Array, keys: jax.Array) -> jax.Array:
  """One UEraser draw per image of a normalised batch (B, H, W, C) in [-0.5, 0.5], with
  per-sample keys (B,); returns the same shape and range."""
  return jax.vmap(ueraser_one)(x + 0.5, keys) - 0.5
