"""dc on MNIST-5k with APBench's hyperparameters (configs/apbench.py) and the demo's surrogate."""
from ..apbench import attack
from .sem import get_config as sem


def get_config():
  return attack("dc", sem())
