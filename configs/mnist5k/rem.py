"""REM on MNIST-5k: the SEM demo config with REM's inner 10-step PGD (about 6x slower per step)."""
from .sem import get_config as sem


def get_config():
  return sem().replace(method="rem")
