"""Protection study, the CPU cut: the cells the README's conclusions rest on, in about two
hours of 2 CPU cores (the whole grid of study_radius / study_budget / study_photos needs
about 19 hours there, minutes on one GPU: docs/study.md).

At ρu 16, victims with PGD-AT at ρa 0, 4 (= ρu/4) and 8 (= ρu/2):
- MNIST-5k: clean, SEM, SEM + projection, EM + projection, and SEM with its surrogate's
  adversary at ρu/4 plus the projection;
- the colour photographs (skimage_photos): clean, and that last SEM setting.
Every row is the row of the same name in the other study configs (same settings), so in a
shared workdir nothing is computed twice, in either order.

  python run.py study --config configs/study/cpu.py --workdir runs/study
"""
from .common import quarter_adversary, row
from sem_jax.suites.study import StudyConfig

EPS = 16.0


def get_config() -> StudyConfig:
  m, p, d = "mnist5k, ρu 16", "skimage_photos, ρu 16", "skimage_photos"
  a4 = quarter_adversary(EPS)
  return StudyConfig(name="cpu", title="protection study: the CPU cut (ρu 16)", experiments=(
      row("mnist-clean", m, "clean", EPS, label="clean"),
      row("mnist-sem-e16", m, "sem", EPS, label="sem"),
      row("mnist-sem-proj-e16", m, "sem", EPS, label="sem + projection",
          project_to_valid_range=True),
      row("mnist-em-proj-e16", m, "em", EPS, label="em + projection",
          project_to_valid_range=True),
      row("mnist-sem-e16-a4-proj", m, "sem", EPS, label="sem, surrogate ρa 4 + projection",
          **a4),
      row("photos-clean", p, "clean", EPS, d, label="clean"),
      row("photos-sem-a4-proj-e16", p, "sem", EPS, d, label="sem, surrogate ρa 4 + projection",
          **a4),
  ))
