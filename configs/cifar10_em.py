"""EM on CIFAR-10 (Huang et al. 2021): the surrogate is trained normally (no PGD-AT) and the
noise minimises CE over one augmentation sample per step."""
from configs_common import derive  # noqa: F401


def get_config():
  return derive("cifar10_sem.py", method="em", num_samples=1)
