"""Random baseline on CIFAR-10: δ ~ U[-8, 8]/255 per image."""
from configs_common import derive


def get_config():
  return derive("cifar10_sem.py", method="random")
