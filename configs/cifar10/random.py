"""Random baseline on CIFAR-10: δ ~ U[-8, 8]/255 per image."""
from .sem import get_config as sem


def get_config():
  return sem().replace(method="random")
