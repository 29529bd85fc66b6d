"""The headline protection cells again at several seeds: the spread the README quotes.

One seed's victim accuracy moves by ten points or more from one CPU generation to another
(XLA:CPU orders floating-point sums differently, and the training diverges), so every
headline number is quoted as the mean and range of seeds 0, 1 and 2 of this study:

- the efficacy benchmark's clean and SEM rows (ρu 8, the 200-step surrogate, the 800-step
  victims; configs/study/efficacy_mnist5k.py) at ρa 0, 2 and 4: the attacks table's SEM and
  clean rows and the leaderboard's under ``none`` (ρa 0) and ``at`` (PGD-AT at ρa 4);
- the README's efficacy cell: SEM at ρu 16 with its surrogate's adversary at ρu/4 and the
  projection, victims at ρa 0 and 4 (configs/study/cpu.py's row of the same name), with its
  clean reference.

  python run.py study --config configs/study/spread_mnist5k.py --workdir runs/spread \\
      --seeds 0,1,2

writes headline-spread.md / .json (each cell's mean and range) beside each seed's own tables
(headline.md, headline-seed1.md, ...). About 50 minutes of 2 CPU cores per seed.
"""
from sem_jax.suites.study import Experiment, StudyConfig

from .common import quarter_adversary, row
from .efficacy_mnist5k import GROUP, SHORT, victim
from ..mnist5k import sem

EPS = 16.0
CELL = "mnist5k, ρu 16"


def get_config() -> StudyConfig:
  return StudyConfig(name="headline", title="the headline cells", experiments=(
      Experiment("clean", GROUP, victim(), (0.0, 2.0, 4.0)),
      Experiment("sem", GROUP, victim(), (0.0, 2.0, 4.0),
                 generate=sem.get_config().replace(**SHORT)),
      row("mnist-clean", CELL, "clean", EPS, label="clean", adv_radii=(0.0, 4.0)),
      row("mnist-sem-e16-a4-proj", CELL, "sem", EPS, label="sem, surrogate ρa 4 + projection",
          adv_radii=(0.0, 4.0), **quarter_adversary(EPS)),
  ))
