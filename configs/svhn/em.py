"""em on SVHN with CIFAR-10's settings (configs/cifar10/em.py)."""
from ..cifar10.em import get_config as cifar10


def get_config():
  return cifar10().replace(dataset="svhn")
