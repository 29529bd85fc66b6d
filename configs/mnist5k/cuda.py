"""cuda (CUDA's class-wise filters) on MNIST-5k with the release's hyperparameters (configs/robust.py)."""
from ..robust import robust
from .sem import get_config as sem


def get_config():
  return robust("cuda", sem())
