"""REM on CIFAR-10 (Fu et al. 2022) with the paper's defaults: SEM's config, inner PGD instead
of one random draw in the expectation (10 PGD steps of 0.8/255 inside ρa = 4/255)."""
from .sem import get_config as sem


def get_config():
  return sem().replace(method="rem")
