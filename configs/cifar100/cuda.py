"""cuda (CUDA's class-wise filters) on CIFAR-100 with the release's hyperparameters (configs/robust.py). Needs the tfds extra."""
from ..robust import robust
from .sem import get_config as sem


def get_config():
  return robust("cuda", sem())
