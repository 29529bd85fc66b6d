"""REM on CIFAR-10 (Fu et al. 2022) with the paper's defaults: SEM's config, inner PGD instead
of one random draw in the expectation (10 PGD steps of 0.8/255 inside ρa = 4/255)."""
from configs_common import derive  # noqa: F401  (see configs/configs_common.py)


def get_config():
  return derive("cifar10_sem.py", method="rem")
