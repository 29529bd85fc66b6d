"""Protection study, part 4: what limits protection on the unseen sets, on variants of them
that `tools/variant_data.py` builds (npz files; ρu 8, the npz default: SEM 400 steps +
projection, surrogate ρa 2; standard victims unless said; seeds 0 and 1).

- Do the photographs' overlapping patches make them hard to protect? skimage_photos draws
  200 random 32x32 patches per photograph, so each training pixel lies in ~4 training
  images. photos_grid: 40 non-overlapping tiles per class; photos_rand: 40 random
  (overlapping) patches per class from the same rows; the same test patches.
- Is it the image size? digits32: sklearn_digits upsampled 2x to 32x32 (4x the pixels to
  carry noise, like MNIST-5k's 32x32), the same images and split; once with the default's
  4-pixel augmentation pad and once with 8 (the same shift relative to the image as 4 px on
  the 16 px originals), to tell the pixel count from the thief's relative shift.
  photos64: skimage_photos upsampled 2x to 64x64 (folder/sem.py's size), pad 4.
- Is it what a patch's low-order statistics give away? A linear classifier on a photo patch's
  mean colour alone scores 51 % (8-bin histograms: 68 %; `run.py photo-cues`), about what the
  victims of protected photos score. photos_grey: the same patches in grey (histograms 48 %);
  photos_greynorm: grey with each patch's levels standardised to mean 128, sd 40 (31-33 %).
- Does adversarial training undo it? The digits32 victims also train with PGD-AT at ρa 2
  (ρu/4, the surrogate's own radius) and 4 (ρu/2).
- Does a thief's filter undo what the extra pixels buy? The digits32 noise (seeds 0 and 1)
  against victims that first apply a 3x3 mean or median filter to the published images
  (and clean data through the same filter).

  python tools/variant_data.py runs/variants
  python run.py study --config configs/study/variants.py --workdir runs/study
The folder holding the npz files is $SEM_JAX_VARIANT_DATA (default runs/variants).
"""
import os

from .common import quarter_adversary, row, victim
from sem_jax.suites.study import Experiment, StudyConfig

GROUPS = {"grid": ("photos_grid", "photos, 40 non-overlapping tiles per class", 4),
          "rand": ("photos_rand", "photos, 40 overlapping random patches per class", 4),
          "digits32": ("digits32", "digits upsampled to 32x32", 4),
          "digits32-pad8": ("digits32", "digits upsampled to 32x32, augmentation pad 8", 8),
          "photos64": ("photos64", "photos upsampled to 64x64", 4),
          "photos-grey": ("photos_grey", "photos in grey", 4),
          "photos-greynorm": ("photos_greynorm", "photos in grey, each patch standardised", 4)}


# skimage_photos itself (not a file), for replicates beside its grey variants: variant("photos")
PHOTOS = ("", "photos (skimage_photos, colour)", 4)


def variant(kind: str, data_dir: str, seeds=(0, 1)) -> list:
  """Clean and the npz default (one row per seed) on one variant, ρu 8, standard victims (on
  digits32 also PGD-AT at ρa 2 = ρu/4, the surrogate's radius, and ρa 4 = ρu/2); the
  surrogate and the victim augment with the same pad. kind "photos": skimage_photos."""
  file, title, pad = PHOTOS if kind == "photos" else GROUPS[kind]
  dataset, path = ("npz", os.path.join(data_dir, f"{file}.npz")) if file else ("skimage_photos", "")
  radii = (0.0, 2.0, 4.0) if kind == "digits32" else (0.0,)
  g = f"{title}, ρu 8, " + ("victims at ρa 0, 2 and 4" if len(radii) > 1 else "standard victim")
  ev = victim(dataset, data_dir=path, augment_pad=pad)
  out = [Experiment(f"{kind}-clean", g, ev, radii, None, "clean")]
  for seed in seeds:
    e = row(f"{kind}-sem-s400-proj-a2" + (f"-seed{seed}" if seed else ""), g, "sem", 8.0,
            dataset, label=f"the npz default (seed {seed})", adv_radii=radii, seed=seed,
            steps=400, data_dir=path, augment_pad=pad, **quarter_adversary(8.0))
    out.append(Experiment(e.name, g, e.evaluation.replace(data_dir=path, augment_pad=pad),
                          e.adv_radii, e.generate, e.label))
  return out


def filtered(kind: str, data_dir: str, filters=("mean", "median")) -> list:
  """The variant's clean data and noise (seeds 0 and 1) against victims that filter first."""
  base = variant(kind, data_dir)
  g = f"{GROUPS[kind][1]}, ρu 8, victims that filter the images (3x3) first"
  out = []
  for f in filters:
    for e in base:
      out.append(Experiment(e.name.replace(kind, f"{kind}-{f}", 1), g,
                            e.evaluation.replace(defenses=f), (0.0,), e.generate,
                            f"{e.label}, {f} filter", noise=e.noise_name))
  return out


def data_dir() -> str:
  """The folder holding the npz files: $SEM_JAX_VARIANT_DATA, default runs/variants (absolute,
  because each run's identity holds its data path)."""
  return os.path.abspath(os.environ.get("SEM_JAX_VARIANT_DATA", "runs/variants"))


def get_config() -> StudyConfig:
  folder = data_dir()
  return StudyConfig(name="variants",
                     title="protection study: overlapping photo patches, image size",
                     experiments=tuple([e for k in GROUPS for e in variant(k, folder)]
                                       + filtered("digits32", folder)))
