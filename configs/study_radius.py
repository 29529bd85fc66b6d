"""Protection study, part 1: the radius regime on MNIST-5k (2 CPU cores).

For ρu in {8, 16, 32} levels: clean data, random, EM, TAP, REM and SEM noise, SEM and EM
with the feasible-set projection, each against victims with PGD-AT at ρa in {0, ρu/4, ρu/2}.
The surrogates of REM / SEM are adversarially trained at ρu / 2 (study_common.py).

  python run.py study --config configs/study_radius.py --workdir runs/study-radius
"""
from study_common import row
from sem_jax.study import StudyConfig


def group(eps: float) -> list:
  g = f"mnist5k, ρu {eps:g}"
  e = f"{eps:g}"
  return [
      row("mnist-clean", g, "clean", eps, label="clean", adv_radii=(0.0, eps / 4, eps / 2)),
      row(f"mnist-sem-e{e}", g, "sem", eps, label="sem"),
      row(f"mnist-sem-proj-e{e}", g, "sem", eps, label="sem + projection",
          project_to_valid_range=True),
      row(f"mnist-em-e{e}", g, "em", eps, label="em"),
      row(f"mnist-em-proj-e{e}", g, "em", eps, label="em + projection",
          project_to_valid_range=True),
      row(f"mnist-tap-e{e}", g, "tap", eps, label="tap"),
      row(f"mnist-random-e{e}", g, "random", eps, label="random"),
      row(f"mnist-rem-e{e}", g, "rem", eps, label="rem (200 steps)", steps=200),
      row(f"mnist-rem-proj-e{e}", g, "rem", eps, label="rem + projection (200 steps)", steps=200,
          project_to_valid_range=True),
  ]


def get_config() -> StudyConfig:
  return StudyConfig(title="protection study: radius regime (MNIST-5k)",
                     experiments=tuple(group(16.0) + group(32.0) + group(8.0)))
