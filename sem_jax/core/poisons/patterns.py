"""Model-free class-wise noise: linear-separable synthetic patches (LSP) and autoregressive
perturbations (AR) (docs/method.md, "The field's other attacks").

Both are pure functions of PRNG keys (one per class pattern, one per image: its dataset
index folded in, so a block's noise does not depend on the blocking), the labels and the image
shape, in fractions of [0, 1] (float32); [`sem_jax.core.crafting.budgets.to_levels`][sem_jax.core.crafting.budgets.to_levels] turns them
into stored pixel levels.

- LSP (Yu et al., "Availability attacks create shortcuts", KDD 2022): each class is a
  Gaussian cluster in a space of one feature per (patch, channel), its centre a vertex
  of the hypercube of side 2 ``class_sep``, its shape a random linear map; an image's
  sample is upsampled to constant ``patch`` x ``patch`` squares and scaled to the L2 norm
  ``radius * sqrt(H W C)`` (the L2 ball of the L∞ radius ``radius``).
- AR (Sandoval-Segura et al., "Autoregressive perturbations for data poisoning", NeurIPS
  2022): each class owns a causal 3x3 AR filter per channel; an image's noise is one
  realisation of its class's process, started from N(0, 1) on a ``(H + crop) x (W + crop)``
  canvas, the first ``crop`` rows and columns dropped, then scaled to its budget.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

AR_WINDOW = 3   # the AR filter's support: the 3x3 window whose bottom-right entry is predicted


# ----------------------------------------------------------------------------- LSP
def lsp_centres(key, num_classes: int, num_features: int, class_sep: float) -> jax.Array:
  """(classes, features) distinct hypercube vertices ±class_sep (seeded)."""
  for attempt in range(100):
    signs = jax.random.bernoulli(jax.random.fold_in(key, attempt), 0.5,
                                 (num_classes, num_features))
    if len(np.unique(np.asarray(signs), axis=0)) == num_classes:
      return jnp.where(signs, class_sep, -class_sep).astype(jnp.float32)
  raise ValueError(f"cannot place {num_classes} classes on distinct vertices of a "
                   f"{num_features}-dimensional hypercube; use a smaller patch")


def lsp_features(class_key, keys, labels, num_classes: int, num_features: int,
                 class_sep: float = 10.0) -> jax.Array:
  """(N, features): image i's sample of its class's cluster, centre + z_i A_class with
  z_i ~ N(0, I) drawn from ``keys[i]`` and A_class uniform in [-1, 1] (from ``class_key``)."""
  k_centre, k_shape = jax.random.split(class_key)
  centres = lsp_centres(k_centre, num_classes, num_features, class_sep)
  shapes = jax.random.uniform(k_shape, (num_classes, num_features, num_features), jnp.float32,
                              -1.0, 1.0)
  z = jax.vmap(lambda k: jax.random.normal(k, (num_features,), jnp.float32))(keys)
  labels = jnp.asarray(labels)
  return centres[labels] + jnp.einsum("nf,nfg->ng", z, shapes[labels])


def lsp_grid(image_shape, patch: int) -> tuple[int, int]:
  """Patches per side (rows, columns): ceil(H / patch), ceil(W / patch)."""
  h, w, _ = image_shape
  return math.ceil(h / patch), math.ceil(w / patch)


def lsp_noise(class_key, keys, labels, num_classes: int, image_shape, patch: int,
              radius: float, class_sep: float = 10.0) -> jax.Array:
  """LSP noise (N, H, W, C), fractions of [0, 1]: constant on each patch x patch square, each
  image's L2 norm exactly ``radius * sqrt(H W C)`` (``radius`` a fraction, L∞-equivalent)."""
  h, w, c = image_shape
  gh, gw = lsp_grid(image_shape, patch)
  feats = lsp_features(class_key, keys, labels, num_classes, gh * gw * c, class_sep)
  grid = feats.reshape(-1, gh, gw, c)
  full = jnp.repeat(jnp.repeat(grid, patch, 1), patch, 2)[:, :h, :w, :]
  norms = jnp.sqrt(jnp.sum(full ** 2, axis=(1, 2, 3), keepdims=True))
  return full / norms * (radius * math.sqrt(h * w * c))


# ----------------------------------------------------------------------------- AR
def ar_step(coeffs, window) -> jax.Array:
  """One AR prediction: sum of ``coeffs`` (C, 3, 3) times ``window`` (..., C, 3, 3) over the
  window, per channel (the bottom-right coefficient is 0: that is the predicted entry)."""
  return jnp.sum(coeffs * window, axis=(-2, -1))


def ar_coefficients(key, num_classes: int, channels: int, probe: int = 32,
                    max_peak: float = 6.0) -> jax.Array:
  """(classes, C, 3, 3) causal AR filters: N(0, 1) entries, the predicted (bottom-right) one
  0, each channel's filter normalised to sum 1. A draw whose probe realisation (probe x probe)
  concentrates its energy (peak / RMS above ``max_peak``) is redrawn, so that every class's
  noise spreads over the image."""
  out = []
  for k in range(num_classes):
    for attempt in range(200):
      kk = jax.random.fold_in(jax.random.fold_in(key, k), attempt)
      b = jax.random.normal(kk, (channels, AR_WINDOW, AR_WINDOW), jnp.float32)
      b = b.at[:, -1, -1].set(0.0)
      b = b / jnp.sum(b, axis=(1, 2), keepdims=True)
      sig = ar_realise(b[None], jax.random.normal(jax.random.fold_in(kk, 1 << 20),
                                                  (1, probe, probe, channels)), 0)
      rms = jnp.sqrt(jnp.mean(sig ** 2))
      if bool(jnp.isfinite(rms)) and float(jnp.max(jnp.abs(sig)) / rms) <= max_peak:
        out.append(b)
        break
    else:
      raise ValueError(f"no stable AR filter found for class {k} in 200 draws")
  return jnp.stack(out)


@jax.jit
def _ar_scan(coeffs, canvas):
  """Fill ``canvas`` (N, C, H', W') in raster order from row 2 and column 2 on: each entry the
  AR prediction of its causal 3x3 window under its image's filter ``coeffs`` (N, C, 3, 3)."""
  hp, wp = canvas.shape[2], canvas.shape[3]

  def row(canvas, i):
    def col(canvas, j):
      window = jax.lax.dynamic_slice(canvas, (0, 0, i - 2, j - 2),
                                     (canvas.shape[0], canvas.shape[1], 3, 3))
      value = ar_step(coeffs, window)
      return jax.lax.dynamic_update_slice(canvas, value[:, :, None, None], (0, 0, i, j)), None
    canvas, _ = jax.lax.scan(col, canvas, jnp.arange(2, wp))
    return canvas, None

  canvas, _ = jax.lax.scan(row, canvas, jnp.arange(2, hp))
  return canvas


def ar_realise(coeffs, start, crop: int) -> jax.Array:
  """AR realisations (N, H, W, C) from ``start`` (N, H + crop, W + crop, C) N(0, 1) draws and
  per-image filters ``coeffs`` (N, C, 3, 3); the first ``crop`` rows and columns dropped."""
  canvas = _ar_scan(coeffs, jnp.transpose(start, (0, 3, 1, 2)))
  return jnp.transpose(canvas, (0, 2, 3, 1))[:, crop:, crop:, :]


def ar_noise(keys, coeffs, labels, image_shape, radius: float, norm: str = "l2",
             crop: int = 4) -> jax.Array:
  """AR noise (N, H, W, C), fractions of [0, 1]: image i a realisation of its class's process
  (``coeffs`` from [`ar_coefficients`][ar_coefficients]) started from ``keys[i]``, scaled to ``radius`` in
  ``norm`` (l2: the whole image's L2 norm; linf: its largest entry)."""
  h, w, c = image_shape
  labels = jnp.asarray(labels)
  start = jax.vmap(lambda k: jax.random.normal(k, (h + crop, w + crop, c), jnp.float32))(keys)
  sig = ar_realise(coeffs[labels], start, crop)
  if norm == "l2":
    size = jnp.sqrt(jnp.sum(sig ** 2, axis=(1, 2, 3), keepdims=True))
  elif norm == "linf":
    size = jnp.max(jnp.abs(sig), axis=(1, 2, 3), keepdims=True)
  else:
    raise ValueError(f"unknown AR norm {norm!r}; choose l2 or linf")
  return sig / size * radius


def ar_residual(coeffs, noise) -> jax.Array:
  """(N, H - 2, W - 2, C): each entry from row and column 2 on minus its AR prediction under
  ``coeffs`` (N, C, 3, 3): zero (up to float error) for noise an AR process made, at any scale."""
  x = jnp.transpose(noise, (0, 3, 1, 2))
  h, w = x.shape[2], x.shape[3]
  windows = jnp.stack([jnp.stack([x[:, :, a:h - 2 + a, b:w - 2 + b] for b in range(3)], -1)
                       for a in range(3)], -2)   # (N, C, H-2, W-2, 3, 3)
  pred = jnp.sum(coeffs[:, :, None, None] * windows, axis=(-2, -1))
  return jnp.transpose(x[:, :, 2:, 2:] - pred, (0, 2, 3, 1))
