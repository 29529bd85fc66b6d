"""REM on MNIST-5k: the SEM demo config with REM's inner 10-step PGD (about 6x slower per step)."""
from configs_common import derive


def get_config():
  return derive("mnist5k_sem.py", method="rem")
