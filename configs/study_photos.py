"""Protection study, part 3: beyond MNIST. Natural colour photographs (skimage_photos: 32x32
patches of scikit-image's photographs, 8 classes) and grey-level digits (sklearn_digits),
both shipped offline.

- photos, ρu 8 and 16: clean, EM, TAP, REM and SEM noise (SEM also with the feasible-set
  projection) against victims with PGD-AT at 0, ρu/4, ρu/2;
- defaults: what SEM needs to hold a standard-trained victim near chance on both sets
  (surrogate steps and width, J, the projection), and a victim trained twice as long.

  python run.py study --config configs/study_photos.py --workdir runs/study-photos
"""
from study_common import row, victim
from sem_jax.study import Experiment, StudyConfig


def transfer(eps: float) -> list:
  g, e, d = f"skimage_photos, ρu {eps:g}", f"{eps:g}", "skimage_photos"
  return [
      row("photos-clean", g, "clean", eps, d, label="clean", adv_radii=(0.0, eps / 4, eps / 2)),
      row(f"photos-sem-e{e}", g, "sem", eps, d, label="sem"),
      row(f"photos-sem-proj-e{e}", g, "sem", eps, d, label="sem + projection",
          project_to_valid_range=True),
      row(f"photos-em-e{e}", g, "em", eps, d, label="em"),
      row(f"photos-tap-e{e}", g, "tap", eps, d, label="tap"),
      row(f"photos-rem-e{e}", g, "rem", eps, d, label="rem (200 steps)", steps=200),
  ]


def defaults(dataset: str, tag: str) -> list:
  """SEM at ρu 8 under a standard victim: from the folder_sem.py defaults upward."""
  g = f"defaults: {dataset}, ρu 8, standard victim"
  std = (0.0,)
  out = [row(f"{tag}-clean", g, "clean", 8.0, dataset, label="clean", adv_radii=std),
         row(f"{tag}-sem-s300", g, "sem", 8.0, dataset, label="sem 300 steps (old default)",
             adv_radii=std, steps=300),
         row(f"{tag}-sem-s1000", g, "sem", 8.0, dataset, label="sem 1000 steps", adv_radii=std,
             steps=1000),
         row(f"{tag}-sem-s1000-proj", g, "sem", 8.0, dataset, label="sem 1000 steps + projection",
             adv_radii=std, steps=1000, project_to_valid_range=True),
         row(f"{tag}-sem-s1000-w32", g, "sem", 8.0, dataset, label="sem 1000 steps, width 32",
             adv_radii=std, steps=1000, model_width=32)]
  long = out[-2]
  out.append(Experiment(f"{tag}-sem-s1000-proj-victim1600", g,
                        victim(dataset, train_steps=1600, lr_decay_every=640), std, long.generate,
                        "same noise, victim 1600 steps", noise=long.name))
  return out


def get_config() -> StudyConfig:
  return StudyConfig(title="protection study: natural colour photographs and grey-level digits",
                     experiments=tuple(transfer(8.0) + transfer(16.0)
                                       + defaults("skimage_photos", "photos")
                                       + defaults("sklearn_digits", "digits")))
