"""EM on CIFAR-10 (Huang et al. 2021): the surrogate is trained normally (no PGD-AT) and the
noise minimises CE over one augmentation sample per step."""
from .sem import get_config as sem


def get_config():
  return sem().replace(method="em", num_samples=1)
