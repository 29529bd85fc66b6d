"""Protection study, part 3: beyond MNIST. Natural colour photographs (skimage_photos: 32x32
patches of scikit-image's photographs, 8 classes) and grey-level digits (sklearn_digits),
both shipped offline (2 CPU cores).

- defaults, ρu 8, standard victim, on both sets: what SEM needs to hold a victim near
  chance: the old folder/sem.py schedule (300 steps), 1000 steps, with the feasible-set
  projection, with the surrogate's adversary at ρu/4 instead of ρu/2; EM with the projection
  as the reference (the strongest noise against a standard victim in radius.py); the
  best noise against a victim trained twice as long; and the default's settings with 400
  surrogate steps instead of 1000 (seeds 0 and 1);
- transfer on the photographs at ρu 16, victims at ρa 0, 4, 8: clean, SEM (with and
  without the projection), EM + projection, TAP, and SEM with its adversary at ρu/4 plus the
  projection (the best MNIST-5k setting of budget.py), twice (seeds 0 and 1), and
  once with a surrogate twice as wide (small CNN width 32 instead of 16);
- the default settings scaled to twice the radius (ρu 16, 1000 steps) on both sets, standard
  victim: what the radius buys a data owner;
- levers on the digits (ρu 8, standard victim, seeds 0 and 1; about a minute per noise on 2
  cores): the default with 100 or 200 surrogate steps, K = 20 descent steps, J = 1, EM with
  the projection at 400 steps, and the default noise against a victim without augmentation.

  python run.py study --config configs/study/photos.py --workdir runs/study
"""
from .common import quarter_adversary, row, victim
from sem_jax.suites.study import Experiment, StudyConfig


def defaults(dataset: str, tag: str) -> list:
  """SEM at ρu 8 under a standard victim: from the old folder/sem.py schedule upward."""
  g = f"defaults: {dataset}, ρu 8, standard victim"
  std = dict(adv_radii=(0.0,))

  def sem(name, label, **kw):
    return row(f"{tag}-{name}", g, "sem", 8.0, dataset, label=label, **std, **kw)

  out = [row(f"{tag}-clean", g, "clean", 8.0, dataset, label="clean", **std),
         sem("sem-s300", "sem, 300 steps (old default)", steps=300),
         sem("sem-s1000", "sem, 1000 steps", steps=1000),
         sem("sem-s1000-proj", "sem, 1000 steps + projection", steps=1000,
             project_to_valid_range=True),
         sem("sem-s1000-proj-a2", "sem, 1000 steps + projection, surrogate ρa 2", steps=1000,
             project_to_valid_range=True, adv_radius=2.0, adv_step_size=0.4),
         row(f"{tag}-em-s1000-proj", g, "em", 8.0, dataset,
             label="em, 1000 steps + projection (reference)", steps=1000,
             project_to_valid_range=True, **std)]
  best = out[3]
  out.append(Experiment(f"{tag}-sem-s1000-proj-victim1600", g,
                        victim(dataset, train_steps=1600, lr_decay_every=640), (0.0,),
                        best.generate, "same noise as '+ projection', victim 1600 steps",
                        noise=best.name))
  out.append(sem("sem-s400-proj-a2", "sem, 400 steps + projection, surrogate ρa 2", steps=400,
                 **quarter_adversary(8.0)))   # does the default need its 1000 steps?
  out.append(sem("sem-s400-proj-a2-seed1", "the same, seed 1", steps=400,
                 **quarter_adversary(8.0), seed=1))
  return out


def transfer(eps: float) -> list:
  g, e, d = f"skimage_photos, ρu {eps:g}", f"{eps:g}", "skimage_photos"
  return [
      row("photos-clean", g, "clean", eps, d, label="clean", adv_radii=(0.0, eps / 4, eps / 2)),
      row(f"photos-sem-e{e}", g, "sem", eps, d, label="sem"),
      row(f"photos-sem-proj-e{e}", g, "sem", eps, d, label="sem + projection",
          project_to_valid_range=True),
      row(f"photos-em-proj-e{e}", g, "em", eps, d, label="em + projection",
          project_to_valid_range=True),
      row(f"photos-tap-e{e}", g, "tap", eps, d, label="tap"),
      row(f"photos-sem-a4-proj-e{e}", g, "sem", eps, d,
          label="sem, surrogate ρa 4 + projection", **quarter_adversary(eps)),
      row(f"photos-sem-a4-proj-e{e}-seed1", g, "sem", eps, d,
          label="sem, surrogate ρa 4 + projection (seed 1)", **quarter_adversary(eps), seed=1),
      row(f"photos-sem-a4-proj-e{e}-w32", g, "sem", eps, d,
          label="sem, surrogate ρa 4 + projection, width 32", **quarter_adversary(eps),
          model_width=32),
  ]


def defaults_at(eps: float) -> list:
  """The ρu 8 default settings (projection, surrogate adversary at ρu/4; 1000 steps, as the
  default was when this row was added) scaled to ρu = eps (α = ρu/5, adversary ρu/4 in steps
  of ρu/20, as every row here), on both sets, standard victim."""
  g = f"the ρu 8 settings scaled to ρu {eps:g} (1000 steps), standard victim"
  return [row(f"{tag}-sem-s1000-proj-a{eps / 4:g}-e{eps:g}", g, "sem", eps, d,
              label=f"{tag}: sem, 1000 steps + projection, surrogate ρa {eps / 4:g}",
              adv_radii=(0.0,), steps=1000, **quarter_adversary(eps))
          for d, tag in (("sklearn_digits", "digits"), ("skimage_photos", "photos"))]


def levers(dataset: str, tag: str) -> list:
  """What moves the default's protection at ρu 8 (standard victim), seeds 0 and 1: surrogate
  steps (100, 200), K 20, J 1, EM + projection, and a victim that does not augment."""
  g = f"levers: {dataset}, ρu 8, standard victim (seeds 0 / 1)"
  out = [row(f"{tag}-clean", g, "clean", 8.0, dataset, label="clean", adv_radii=(0.0,))]
  for seed in (0, 1):
    s, std = (f"-seed{seed}" if seed else ""), dict(adv_radii=(0.0,), seed=seed)
    end = f" (seed {seed})"

    def sem(name, label, **kw):
      return row(f"{tag}-{name}{s}", g, "sem", 8.0, dataset, label=label + end, **std,
                 **{**quarter_adversary(8.0), "steps": 400, **kw})

    base = sem("sem-s400-proj-a2", "the default: sem, 400 steps + projection, surrogate ρa 2")
    seeded = {"seed": seed} if seed else {}
    out += [base,
            sem("sem-s100-proj-a2", "the default with 100 surrogate steps", steps=100),
            sem("sem-s200-proj-a2", "the default with 200 surrogate steps", steps=200),
            sem("sem-s400-proj-a2-k20", "the default with K = 20", noise_steps=20),
            sem("sem-s400-proj-a2-j1", "the default with J = 1", num_samples=1),
            row(f"{tag}-em-s400-proj{s}", g, "em", 8.0, dataset,
                label="em, 400 steps + projection" + end, steps=400,
                project_to_valid_range=True, **std),
            Experiment(f"{tag}-default-victim-noaug{s}", g,
                       victim(dataset, augment=False, **seeded), (0.0,), base.generate,
                       "the default's noise, victim without augmentation" + end,
                       noise=base.name)]
  return out


def get_config() -> StudyConfig:
  return StudyConfig(name="photos",
                     title="protection study: natural colour photographs and grey-level digits",
                     experiments=tuple(defaults("skimage_photos", "photos")
                                       + defaults("sklearn_digits", "digits") + transfer(16.0)
                                       + defaults_at(16.0)
                                       + levers("sklearn_digits", "digits")))
