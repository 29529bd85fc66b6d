"""Publishing photos: full-size exports and the visibility report of every export.

A full-size export (``export --format png --resolution original``) writes every photo of a
``folder`` run at its own size: the int8 noise crafted at ``image_size`` is resized to the photo
(bilinear, in float; every value stays within ±ε because bilinear weights are a convex
combination) and rounded, and the published photo is ``clip(photo + noise, 0, 255)``. Lossless
sources become PNG; JPEG sources become PNG, or JPEG at ``jpeg_quality`` (4:4:4, no chroma
subsampling), whose effect on the noise is measured per photo (``noise_kept``: the share of the
intended noise, by projection, that the decoded JPEG still carries).
"""
from __future__ import annotations

import os

import numpy as np

from sem_jax.commands.formats import class_dir
from sem_jax.core import quality
from sem_jax.core.units import protect
from sem_jax.data import rows as R
from sem_jax.data.folder import read_image
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs

JPEG_EXTENSIONS = (".jpg", ".jpeg")


def resize_noise(noise: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """int8 noise (h, w, C) resized to (H, W) = ``size``: bilinear per channel, rounded."""
  from PIL import Image
  h, w = int(size[0]), int(size[1])
  chans = [np.asarray(Image.fromarray(noise[..., c].astype(np.float32), mode="F")
                      .resize((w, h), Image.BILINEAR)) for c in range(noise.shape[-1])]
  return np.rint(np.stack(chans, -1)).astype(np.int8)


def published_photo(photo: np.ndarray, noise: np.ndarray) -> np.ndarray:
  """The published full-size photo: ``clip(photo + resize(noise), 0, 255)`` as uint8."""
  return protect(photo, resize_noise(noise, photo.shape[:2]))


def noise_kept(photo: np.ndarray, intended: np.ndarray, decoded: np.ndarray) -> float:
  """The share of the intended change ``intended - photo`` that ``decoded - photo`` carries
  (its projection onto the intended one; 1: all of it, 0: none)."""
  d = intended.astype(np.float64) - photo
  r = decoded.astype(np.float64) - photo
  return float((r * d).sum() / max((d * d).sum(), 1e-12))


def original_names(ds) -> list[str]:
  """Relative path of every photo of a full-size export, extension not yet chosen."""
  return [os.path.join(class_dir(ds, int(ds.train_labels[i])),
                       os.path.splitext(os.path.basename(f))[0]) for i, f in enumerate(ds.train_files)]


def source_root(run) -> str:
  """The folder the run's photos were read from; a full-size export needs them."""
  cfg = run.manifest.config
  if cfg.dataset != "folder" or not run.dataset.train_files:
    raise SemJaxError(f"--resolution original needs a folder run (photo files); this run's "
                      f"dataset is {cfg.dataset}")
  return cfg.data_dir


def _encode(path: str, image: np.ndarray, quality_: int) -> None:
  from PIL import Image
  if quality_:
    atomic.atomic_write(path, lambda f: Image.fromarray(image).save(
        f, format="JPEG", quality=quality_, subsampling=0))
  else:
    atomic.atomic_write(path, lambda f: Image.fromarray(image).save(f, format="PNG"))


def export_originals(run, out: str, jpeg_quality: int, log) -> tuple[dict, dict]:
  """Write every photo of ``run`` at its own size into ``out``: ({relative file: record},
  visibility summary). Each record holds its index, label, source, size, encoding, SHA-256,
  PSNR and SSIM (and ``noise_kept`` for JPEG files)."""
  if jpeg_quality and not 1 <= jpeg_quality <= 95:
    raise SemJaxError(f"--jpeg-quality {jpeg_quality} is out of range 1..95 (0: PNG)")
  ds, root = run.dataset, source_root(run)
  files, psnrs, ssims, kept = {}, [], [], []
  for i, (stem, src) in enumerate(zip(original_names(ds), ds.train_files)):
    photo = read_image(os.path.join(root, src), 0)
    intended = published_photo(photo, np.asarray(run.noise[i]))
    as_jpeg = bool(jpeg_quality) and src.lower().endswith(JPEG_EXTENSIONS)
    rel = stem + (".jpg" if as_jpeg else ".png")
    path = os.path.join(out, rel)
    fs.makedirs(os.path.dirname(path))
    _encode(path, intended, jpeg_quality if as_jpeg else 0)
    decoded = read_image(path, 0)
    rec = {"index": i, "label": int(ds.train_labels[i]), "source": src,
           "size": list(photo.shape[:2]), "encoding": "jpeg" if as_jpeg else "png",
           "sha256": atomic.sha256_file(path), "psnr_db": round(quality.psnr(photo, decoded), 4),
           "ssim": round(quality.ssim(photo, decoded), 6)}
    if as_jpeg:
      rec.update(jpeg_quality=jpeg_quality, noise_kept=round(noise_kept(photo, intended, decoded), 4))
      kept.append(rec["noise_kept"])
    files[rel] = rec
    psnrs.append(rec["psnr_db"])
    ssims.append(rec["ssim"])
  vis = quality.summary(psnrs, ssims, class_cast(ds, run.noise), list(files), class_names(ds))
  if kept:
    vis["jpeg"] = {"quality": jpeg_quality, "files": len(kept),
                   "noise_kept_mean": round(float(np.mean(kept)), 4),
                   "noise_kept_worst": round(float(np.min(kept)), 4)}
    log(f"JPEG at quality {jpeg_quality} kept {vis['jpeg']['noise_kept_mean']:.1%} of the noise "
        f"on average (worst {vis['jpeg']['noise_kept_worst']:.1%}) in {len(kept)} photos")
  return files, vis


def class_names(ds) -> list[str]:
  """Every class's folder name, by label."""
  return [class_dir(ds, c) for c in range(ds.num_classes)]


def class_cast(ds, noise) -> np.ndarray:
  """(classes, C): each class's mean noise per channel, in levels, a block of rows at a time."""
  return quality.class_mean_noise(noise, np.asarray(ds.train_labels), ds.num_classes,
                                  R.block_rows(noise))


def row_visibility(ds, noise, names: list[str]) -> dict:
  """The visibility summary of the published training rows ``clip(image + noise)`` at the
  run's image size (every export but a full-size one), with the per-image figures."""
  published = R.Protected(ds.train_images, noise)
  psnrs, ssims = [], []
  for s, e in R.chunks(ds.num_train, R.block_rows(published)):
    clean, pub = np.asarray(ds.train_images[s:e]), published[s:e]
    psnrs += [quality.psnr(a, b) for a, b in zip(clean, pub)]
    ssims += [quality.ssim(a, b) for a, b in zip(clean, pub)]
  vis = quality.summary(psnrs, ssims, class_cast(ds, noise), names, class_names(ds))
  vis["per_image"] = {"psnr_db": [round(v, 4) for v in psnrs], "ssim": [round(v, 6) for v in ssims]}
  return vis


def check_original(path: str, rec: dict, root: str, noise: np.ndarray) -> str:
  """'' when the full-size file at ``path`` is what export wrote from its source photo (PNG:
  pixel for pixel; JPEG: its size and PSNR), else the problem."""
  src = os.path.join(root, str(rec.get("source")))
  if not os.path.isfile(src):
    return f"{path}: its source photo {src} is missing, so its pixels cannot be checked"
  photo = read_image(src, 0)
  decoded = read_image(path, 0)
  if decoded.shape != photo.shape:
    return f"{path}: {decoded.shape[:2]} px, not its photo's {photo.shape[:2]}"
  if rec.get("encoding") == "png":
    if not np.array_equal(decoded, published_photo(photo, noise)):
      return f"{path}: pixels differ from clip(photo + resized noise)"
  elif abs(quality.psnr(photo, decoded) - float(rec.get("psnr_db", -1))) > 1e-3:
    return f"{path}: its PSNR differs from {rec.get('psnr_db')} dB in the export manifest"
  return ""
