"""Protection study, part 2: the robust surrogate's budget and the paper's ablations, on
MNIST-5k at ρu = 16 (2 CPU cores).

- budget: SEM surrogates trained 200, 1000 and 2000 outer steps, REM 200 and 600; each row
  reports the surrogate's clean and robust accuracy. SEM at 2000 steps costs about REM's
  wall time at 200: the random offset against the adversarial one at equal time.
- J: SEM with J in {1, 3, 5} samples of (augmentation, offset).
- surrogate ρa: SEM with its adversary (PGD-AT and the random offset) at ρu/4, ρu/2, ρu.

  python run.py study --config configs/study_budget.py --workdir runs/study-budget
"""
from study_common import row
from sem_jax.study import StudyConfig

EPS = 16.0


def get_config() -> StudyConfig:
  b, j, a = "budget (ρu 16)", "J samples (ρu 16, 400 steps)", "surrogate ρa (ρu 16, 400 steps)"
  return StudyConfig(title="protection study: surrogate budget and ablations (MNIST-5k, ρu 16)",
                     experiments=(
      row("mnist-clean", b, "clean", EPS, label="clean"),
      row("mnist-sem-e16-s200", b, "sem", EPS, label="sem, 200 steps", steps=200),
      row("mnist-sem-e16", b, "sem", EPS, label="sem, 400 steps"),
      row("mnist-sem-e16-s1000", b, "sem", EPS, label="sem, 1000 steps", steps=1000),
      row("mnist-sem-e16-s2000", b, "sem", EPS, label="sem, 2000 steps", steps=2000),
      row("mnist-rem-e16", b, "rem", EPS, label="rem, 200 steps", steps=200),
      row("mnist-rem-e16-s600", b, "rem", EPS, label="rem, 600 steps", steps=600),
      row("mnist-clean", j, "clean", EPS, label="clean"),
      row("mnist-sem-e16-j1", j, "sem", EPS, label="sem, J=1", num_samples=1),
      row("mnist-sem-e16", j, "sem", EPS, label="sem, J=3"),
      row("mnist-sem-e16-j5", j, "sem", EPS, label="sem, J=5", num_samples=5),
      row("mnist-clean", a, "clean", EPS, label="clean"),
      row("mnist-sem-e16-a4", a, "sem", EPS, label="sem, ρa 4", adv_radius=4.0,
          adv_step_size=0.8),
      row("mnist-sem-e16", a, "sem", EPS, label="sem, ρa 8"),
      row("mnist-sem-e16-a16", a, "sem", EPS, label="sem, ρa 16", adv_radius=16.0,
          adv_step_size=3.2),
  ))
