"""Protection study, part 2: the robust surrogate's budget and the paper's ablations, on
MNIST-5k at ρu = 16, victims at ρa 0 and 4 (2 CPU cores).

- budget: SEM and REM surrogates trained a few hundred (SEM 200 and 400, REM 200), 1000 and
  2000 outer steps (REM's 200 steps cost about SEM's 1000 in wall time: the random offset
  against the adversarial one at equal time); each row reports the surrogate's clean and
  robust accuracy.
- J: SEM with J in {1, 3, 5} samples of (augmentation, offset).
- surrogate ρa: SEM with its adversary (PGD-AT and the random offset) at ρu/4, ρu/2, ρu, and
  at ρu/4 with the feasible-set projection (twice: seeds 0 and 1, generation and victims).
Rows shared with radius.py (same names) are computed once in a shared workdir.

  python run.py study --config configs/study/budget.py --workdir runs/study
"""
from .common import quarter_adversary, row
from sem_jax.suites.study import StudyConfig

EPS = 16.0
RADII = (0.0, 4.0)


def get_config() -> StudyConfig:
  b, j, a = "budget (ρu 16)", "J samples (ρu 16, 400 steps)", "surrogate ρa (ρu 16, 400 steps)"

  def r(name, group, method, label, **kw):
    return row(name, group, method, EPS, label=label, adv_radii=RADII, **kw)

  return StudyConfig(name="budget",
                     title="protection study: surrogate budget and ablations (MNIST-5k, ρu 16)",
                     experiments=(
      r("mnist-clean", b, "clean", "clean"),
      r("mnist-sem-e16-s200", b, "sem", "sem, 200 steps", steps=200),
      r("mnist-sem-e16", b, "sem", "sem, 400 steps"),
      r("mnist-sem-e16-s1000", b, "sem", "sem, 1000 steps", steps=1000),
      r("mnist-rem-e16", b, "rem", "rem, 200 steps", steps=200),
      r("mnist-clean", j, "clean", "clean"),
      r("mnist-sem-e16-j1", j, "sem", "sem, J=1", num_samples=1),
      r("mnist-sem-e16", j, "sem", "sem, J=3"),
      r("mnist-sem-e16-j5", j, "sem", "sem, J=5", num_samples=5),
      r("mnist-clean", a, "clean", "clean"),
      r("mnist-sem-e16-a4", a, "sem", "sem, ρa 4", adv_radius=4.0, adv_step_size=0.8),
      r("mnist-sem-e16", a, "sem", "sem, ρa 8"),
      r("mnist-sem-e16-a16", a, "sem", "sem, ρa 16", adv_radius=16.0, adv_step_size=3.2),
      r("mnist-sem-e16-s2000", b, "sem", "sem, 2000 steps", steps=2000),
      r("mnist-sem-e16-a4-proj", a, "sem", "sem, ρa 4 + projection", **quarter_adversary(EPS)),
      r("mnist-sem-e16-a4-proj-seed1", a, "sem", "sem, ρa 4 + projection (seed 1)",
        **quarter_adversary(EPS), seed=1),
      r("mnist-rem-e16-s1000", b, "rem", "rem, 1000 steps", steps=1000),
      r("mnist-rem-e16-s2000", b, "rem", "rem, 2000 steps", steps=2000),
  ))
