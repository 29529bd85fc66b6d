"""Hypocritical perturbations on MNIST-5k (configs/apbench.py) against the clean victim of
  python run.py evaluate --config configs/eval/mnist5k.py --noise none --workdir runs/clean
"""
from ..apbench import attack
from .sem import get_config as sem


def get_config():
  return attack("hypo", sem(), clean="runs/clean", batch_size=200)
