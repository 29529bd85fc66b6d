"""rem on SVHN with CIFAR-10's settings (configs/cifar10/rem.py)."""
from ..cifar10.rem import get_config as cifar10


def get_config():
  return cifar10().replace(dataset="svhn")
