"""Protection study, part 1: the radius regime on MNIST-5k (2 CPU cores).

Victims with PGD-AT at ρa in {0, ρu/4, ρu/2} against, in the order they run:
- ρu 16: clean, SEM, EM, each with and without the feasible-set projection, then REM
  (200 steps), TAP, REM + projection and random noise;
- ρu 32: clean, SEM and SEM + projection, EM + projection;
- ρu 8: SEM and EM with the projection (the efficacy benchmark has every method at ρu 8
  without it, with 200-step surrogates);
- REM (200 steps) + projection at ρu 32 and 8 (added last, so a workdir that ran the rest
  keeps its order).
The surrogates of REM / SEM are adversarially trained at ρu / 2 (common.py).

  python run.py study --config configs/study/radius.py --workdir runs/study
"""
from .common import row
from sem_jax.suites.study import StudyConfig


def core(eps: float, em_plain: bool = True) -> list:
  g, e = f"mnist5k, ρu {eps:g}", f"{eps:g}"
  out = [row("mnist-clean", g, "clean", eps, label="clean", adv_radii=(0.0, eps / 4, eps / 2)),
         row(f"mnist-sem-e{e}", g, "sem", eps, label="sem"),
         row(f"mnist-sem-proj-e{e}", g, "sem", eps, label="sem + projection",
             project_to_valid_range=True),
         row(f"mnist-em-proj-e{e}", g, "em", eps, label="em + projection",
             project_to_valid_range=True)]
  if em_plain:
    out.insert(3, row(f"mnist-em-e{e}", g, "em", eps, label="em"))
  return out


def baselines(eps: float) -> list:
  g, e = f"mnist5k, ρu {eps:g}", f"{eps:g}"
  return [row(f"mnist-rem-e{e}", g, "rem", eps, label="rem (200 steps)", steps=200),
          row(f"mnist-tap-e{e}", g, "tap", eps, label="tap"),
          row(f"mnist-rem-proj-e{e}", g, "rem", eps, label="rem (200 steps) + projection",
              steps=200, project_to_valid_range=True),
          row(f"mnist-random-e{e}", g, "random", eps, label="random")]


def rem_proj(eps: float) -> list:
  """REM (200 steps) + projection at ρu = eps: the row baselines(eps) has for it."""
  return [r for r in baselines(eps) if r.name.startswith("mnist-rem-proj")]


def get_config() -> StudyConfig:
  eight = [r for r in core(8.0) if "proj" in r.name or r.generate is None]
  return StudyConfig(name="radius", title="protection study: radius regime (MNIST-5k)",
                     experiments=tuple(core(16.0) + baselines(16.0) + core(32.0, em_plain=False)
                                       + eight + rem_proj(32.0) + rem_proj(8.0)))
