"""Build the protection study's dataset variants (docs/study.md, configs/study/variants.py).

  python tools/variant_data.py runs/variants

writes six .npz files (x_train, y_train, x_test, y_test; uint8 NHWC) for the `npz` dataset:
- photos_grid.npz: skimage_photos' photographs (resized to 256 rows, bicubic, as the dataset)
  cut into non-overlapping 32x32 tiles of the top 70 % of rows; 40 tiles per class (the
  fewest any photograph has), so no training pixel lies in two training images;
- photos_rand.npz: the same number of 32x32 patches per class at random positions there, so
  patches overlap as in skimage_photos; the same 400 test patches (50 per class, random
  positions in the bottom 30 %) in both files;
- digits32.npz: sklearn_digits with each 8x8 digit upsampled 2x (nearest) and zero-padded to
  32x32: the same images and split with four times the pixels to carry noise;
- photos64.npz: skimage_photos with every 32x32 patch upsampled 2x (nearest) to 64x64: the
  same images, split and information with four times the pixels;
- photos_grey.npz: skimage_photos in grey levels (the mean of R, G and B, rounded; one
  channel): the same patches without their colour;
- photos_greynorm.npz: photos_grey with every patch's grey levels standardised to mean 128 and
  standard deviation 40 (rounded, clipped to 0..255): without colour, brightness or contrast,
  the low-order statistics that identify a photograph (tools/photo_cues.py measures them).
Every draw is seeded: the files are the same bit for bit on every run.
"""
import os
import sys

import numpy as np

P, SEED = 32, 7


def photo_variants():
  """({"grid"|"rand"|"test": (images, labels)}, the generator that drew them), from the
  photographs skimage_photos is cut from."""
  from sem_jax.data.sources import PHOTO_ROWS as ROWS, skimage_photographs
  imgs = skimage_photographs(P)
  cut = int(0.7 * ROWS)
  tiles = [[img[t:t + P, l:l + P] for t in range(0, cut - P + 1, P)
            for l in range(0, img.shape[1] - P + 1, P)] for img in imgs]
  n = min(len(t) for t in tiles)
  rng = np.random.default_rng(SEED)
  out = {k: ([], []) for k in ("grid", "rand", "test")}
  for c, (img, tl) in enumerate(zip(imgs, tiles)):
    out["grid"][0].extend(tl[i] for i in rng.choice(len(tl), n, replace=False))
    for k, (lo, hi), m in (("rand", (0, cut), n), ("test", (cut, ROWS), 50)):
      top = rng.integers(lo, hi - P + 1, m)
      left = rng.integers(0, img.shape[1] - P + 1, m)
      out[k][0].extend(img[t:t + P, l:l + P] for t, l in zip(top, left))
    for k, m in (("grid", n), ("rand", n), ("test", 50)):
      out[k][1].extend([c] * m)
  return out, rng


def digits32():
  """sklearn_digits' 8x8 content upsampled 2x and padded to 32x32: (train, test) images."""
  from sem_jax.data.sources import load_sklearn_digits
  d = load_sklearn_digits()

  def up(x):   # (N, 16, 16, 1), content at [4:12] -> (N, 32, 32, 1)
    c = x[:, 4:12, 4:12, :].repeat(2, 1).repeat(2, 2)
    return np.pad(c, ((0, 0), (8, 8), (8, 8), (0, 0)))
  return d, up(np.asarray(d.train_images)), up(np.asarray(d.test_images))


def photos64():
  """skimage_photos upsampled 2x (nearest): (train, test) images and the dataset."""
  from sem_jax.data.sources import load_skimage_photos
  d = load_skimage_photos()

  def up(x):
    return np.asarray(x).repeat(2, 1).repeat(2, 2)
  return d, up(d.train_images), up(d.test_images)


GREY_MEAN, GREY_STD = 128.0, 40.0   # photos_greynorm's level of every patch


def grey(x) -> np.ndarray:
  """(N, H, W, 3) uint8 -> (N, H, W, 1) uint8: the mean of the three channels, rounded."""
  return np.round(np.asarray(x, np.float64).mean(-1, keepdims=True)).astype(np.uint8)


def standardise(x) -> np.ndarray:
  """(N, H, W, C) uint8 -> uint8: each image's levels shifted and scaled to mean GREY_MEAN and
  standard deviation GREY_STD (over its pixels and channels), rounded and clipped to 0..255."""
  x = np.asarray(x, np.float64)
  m, s = x.mean((1, 2, 3), keepdims=True), x.std((1, 2, 3), keepdims=True)
  y = GREY_MEAN + (x - m) * GREY_STD / np.maximum(s, 1e-6)
  return np.clip(np.round(y), 0, 255).astype(np.uint8)


def photos_grey():
  """skimage_photos in grey, and standardised grey: {"grey"|"greynorm": (train, test)}."""
  from sem_jax.data.sources import load_skimage_photos
  d = load_skimage_photos()
  g = (grey(d.train_images), grey(d.test_images))
  return d, {"grey": g, "greynorm": tuple(standardise(x) for x in g)}


def main(outdir: str):
  os.makedirs(outdir, exist_ok=True)
  out, rng = photo_variants()
  x_test, y_test = np.stack(out["test"][0]), np.array(out["test"][1])
  for k in ("grid", "rand"):
    order = rng.permutation(len(out[k][1]))
    _save(os.path.join(outdir, f"photos_{k}.npz"), np.stack(out[k][0])[order],
          np.array(out[k][1])[order], x_test, y_test)
  d, x_tr, x_te = digits32()
  _save(os.path.join(outdir, "digits32.npz"), x_tr, np.asarray(d.train_labels), x_te,
        np.asarray(d.test_labels))
  d, x_tr, x_te = photos64()
  _save(os.path.join(outdir, "photos64.npz"), x_tr, np.asarray(d.train_labels), x_te,
        np.asarray(d.test_labels))
  d, greys = photos_grey()
  for k, (x_tr, x_te) in greys.items():
    _save(os.path.join(outdir, f"photos_{k}.npz"), x_tr, np.asarray(d.train_labels), x_te,
          np.asarray(d.test_labels))


def _save(path, x_train, y_train, x_test, y_test):
  if os.path.exists(path):   # never overwrite: the study's identity holds each file's digest
    print(f"{path} exists; kept")
    return
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  print(f"wrote {path}: train {x_train.shape}, test {x_test.shape}")


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit("usage: python tools/variant_data.py OUTDIR")
  main(sys.argv[1])
