"""The leaderboard: every attack we have (SEM, EM, REM, TAP, random and APBench's LSP, OPS,
AR, NTGA, DeepConfuse, hypocritical) against every defense of the thief, on MNIST-5k at the
efficacy benchmark's CPU protocol (configs/study/efficacy_mnist5k.py: the same noise and
victims). The clean row trains on clean data under each defense (the reference).

Writes leaderboard.md / leaderboard.json / leaderboard.png (attack x defense heat map) beside
the study's own tables; resumable like any study. On a GPU: ``--workers 4``.

  python run.py study --config configs/study/leaderboard_mnist5k.py --workdir runs/board
"""
from sem_jax.suites.study import Experiment, StudyConfig

from .efficacy_mnist5k import SHORT, attacks, victim
from ..mnist5k import em, random, rem, sem, tap

# defense column -> (victim changes, PGD-AT radius in pixel levels)
DEFENSES = {
    "none": ({}, 0.0),
    "at": ({}, 4.0),                                  # PGD-AT ρa 4 (5 steps)
    "bdr": ({"defenses": "bdr"}, 0.0),                # 2 bits (APBench)
    "standardize": ({"defenses": "standardize"}, 0.0),
    "iss_gray": ({"defenses": "iss_gray"}, 0.0),
    "iss_jpeg": ({"defenses": "iss_jpeg"}, 0.0),      # JPEG quality 10
    "gaussian": ({"defenses": "gaussian"}, 0.0),      # OpenCV's 3x3
    "cutout": ({"defenses": "cutout"}, 0.0),
    "ueraser": ({"defenses": "ueraser"}, 0.0),        # standard: max loss of 5 for 1/4
    "dvae": ({"defenses": "dvae", "dvae_steps": 600}, 0.0),   # 600 of D-VAE (~80 s here)
}


def generators() -> dict:
  return {"random": random.get_config(), "em": em.get_config().replace(**SHORT),
          "tap": tap.get_config(), "rem": rem.get_config().replace(**SHORT),
          "sem": sem.get_config().replace(**SHORT), **attacks()}


def get_config() -> StudyConfig:
  rows = []
  for attack, gen in {"clean": None, **generators()}.items():
    if gen is not None and gen.method in ("tap", "hypo"):   # the fixed model they attack
      rows.append(Experiment("clean", attack, victim(), (0.0,), label="none"))
    for d, (change, radius) in DEFENSES.items():
      name = "clean" if (attack, d) == ("clean", "none") else f"{attack}-{d}"
      rows.append(Experiment(name, attack, victim().replace(**change), (radius,), generate=gen,
                             label=d, noise=attack if gen is not None else ""))
  return StudyConfig(experiments=tuple(rows), name="board", leaderboard=True,
                     title="attacks x defenses on MNIST-5k (ρu 8, CPU protocol)")
