"""EM on MNIST-5k: normally trained surrogate, one augmentation sample per descent step."""
from configs_common import derive


def get_config():
  return derive("mnist5k_sem.py", method="em", num_samples=1)
