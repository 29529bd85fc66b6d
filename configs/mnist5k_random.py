"""Random baseline on MNIST-5k: δ ~ U[-ρu, ρu] per image, quantised like every method."""
from configs_common import derive


def get_config():
  return derive("mnist5k_sem.py", method="random")
