"""The field's other attacks on MNIST-5k at the efficacy benchmark's protocol and ρa 0 / 2 / 4
(configs/study/efficacy_mnist5k.py holds them too, beside SEM and the other baselines; this
study runs only them and the clean ρa 0 victim that hypo attacks, about 80 minutes on 2 CPU
cores).

  python run.py study --config configs/study/attacks_mnist5k.py --workdir runs/attacks
"""
from sem_jax.suites.study import Experiment, StudyConfig

from .efficacy_mnist5k import GROUP, attacks, victim

RADII = (0.0, 2.0, 4.0)
ORDER = ("lsp", "ops", "ar", "ntga", "dc", "hypo")


def get_config() -> StudyConfig:
  made = attacks()
  rows = [Experiment("clean", GROUP, victim(), (0.0,))]
  rows += [Experiment(m, GROUP, victim(), RADII, generate=made[m]) for m in ORDER]
  return StudyConfig(experiments=tuple(rows), name="attacks",
                     title="the field's other attacks on MNIST-5k (efficacy protocol)")
