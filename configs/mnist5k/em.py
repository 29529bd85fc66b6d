"""EM on MNIST-5k: normally trained surrogate, one augmentation sample per descent step."""
from .sem import get_config as sem


def get_config():
  return sem().replace(method="em", num_samples=1)
