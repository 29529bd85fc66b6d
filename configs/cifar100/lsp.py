"""lsp on cifar100 with APBench's hyperparameters (configs/apbench.py). Needs the tfds extra."""
from ..apbench import attack
from .sem import get_config as sem


def get_config():
  return attack("lsp", sem())
