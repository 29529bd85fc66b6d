"""The leaderboard: every attack we have (SEM, EM, REM, TAP, random, APBench's LSP, OPS,
AR, NTGA, DeepConfuse, hypocritical, and the robust CUDA, EntF and GUE) against every defense of
the thief (COIN, made against CUDA, and ECLIPSE among them), on MNIST-5k at the efficacy benchmark's CPU
protocol (configs/study/efficacy_mnist5k.py: the same noise and
victims). The clean row trains on clean data under each defense (the reference).

Writes leaderboard.md / leaderboard.json / leaderboard.png (attack x defense heat map) beside
the study's own tables; resumable like any study. On a GPU: ``--workers 4``.

  python run.py study --config configs/study/leaderboard_mnist5k.py --workdir runs/board
"""
from sem_jax.suites.study import Experiment, StudyConfig

from .efficacy_mnist5k import SHORT, attacks, victim
from ..mnist5k import cuda, em, entf, gue, random, rem, sem, tap

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
    "coin": ({"defenses": "coin"}, 0.0),              # α 2 (the release's severity 4)
    "eclipse": ({"defenses": "eclipse"}, 0.0),        # a 300-step denoiser on 200 clean
                                                      # test digits (docs/method.md)
    "ueraser": ({"defenses": "ueraser"}, 0.0),        # standard: max loss of 5 for 1/4
    "dvae": ({"defenses": "dvae", "dvae_steps": 600}, 0.0),   # 600 of D-VAE (~80 s here)
}


def generators() -> dict:
  return {"random": random.get_config(), "em": em.get_config().replace(**SHORT),
          "tap": tap.get_config(), "rem": rem.get_config().replace(**SHORT),
          "sem": sem.get_config().replace(**SHORT), **attacks(), "cuda": cuda.get_config(),
          "entf": entf.get_config(),   # its reference: the board's clean PGD-AT victim
          "gue": gue.get_config()}


# The order the cells are computed in (the study runs its experiments in listed order): the
# clean reference and SEM rows first (UEraser, the dearest cell, after both), then each other
# attack under no defense, then column by column: the defenses that undid SEM most first, PGD-AT
# after them (the attacks and efficacy studies measure ρa 4 on the same noise and victims), then
# the ones that leave it in place, and ISS's grayscale last (on one-channel images it is the
# identity: its cells repeat the first column's). The board's columns follow their first
# appearance, in DEFENSES' order.
FIRST = ("clean", "sem")
LATER = ("none", "iss_jpeg", "bdr", "dvae", "ueraser", "at", "standardize", "gaussian", "cutout",
         "coin", "eclipse", "iss_gray")


def _order(attacks: list) -> list:
  cells = [(a, d) for a in FIRST for d in DEFENSES if d != "ueraser"]
  cells += [(a, "ueraser") for a in FIRST]
  return cells + [(a, d) for d in LATER for a in attacks if a not in FIRST]


def board(name: str = "board", title: str = "attacks x defenses on MNIST-5k (ρu 8, CPU protocol)",
          prefix: str = "", **data) -> StudyConfig:
  """The board's study; ``data`` (dataset=, data_dir=) moves every generation and victim to
  another dataset, ``prefix`` starts its experiment and noise names there, so that no name
  means two runs (configs/study/leaderboard_digits32.py)."""
  gens = {"clean": None, **{a: g.replace(**data) for a, g in generators().items()}}
  clean = prefix + "clean"
  rows = []
  for attack, d in _order(list(gens)):
    gen = gens[attack]
    if gen is not None and gen.method in ("tap", "hypo") and not any(
        r.group == attack for r in rows):                     # the fixed model they attack
      rows.append(Experiment(clean, attack, victim().replace(**data), (0.0,), label="none"))
    if gen is not None and gen.method == "entf" and not any(r.group == attack for r in rows):
      rows.append(Experiment(prefix + "clean-at", attack, victim().replace(**data),
                             (DEFENSES["at"][1],), label="at"))   # the reference model
    change, radius = DEFENSES[d]
    cell = clean if (attack, d) == ("clean", "none") else f"{prefix}{attack}-{d}"
    rows.append(Experiment(cell, attack, victim().replace(**data, **change), (radius,),
                           generate=gen, label=d,
                           noise=prefix + attack if gen is not None else ""))
  return StudyConfig(experiments=tuple(rows), name=name, leaderboard=True, title=title)


def get_config() -> StudyConfig:
  return board()
