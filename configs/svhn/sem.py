"""SEM on SVHN (TFDS svhn_cropped: 73257 train / 26032 test digits, 32x32x3): CIFAR-10's
paper settings (configs/cifar10/sem.py), as APBench runs SVHN with its CIFAR settings."""
from ..cifar10.sem import get_config as cifar10


def get_config():
  return cifar10().replace(dataset="svhn")
