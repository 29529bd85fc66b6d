"""SEM on CIFAR-100: CIFAR-10's paper settings (configs/cifar10/sem.py) on TFDS cifar100."""
from ..cifar10.sem import get_config as cifar10


def get_config():
  return cifar10().replace(dataset="cifar100")
