"""Hypocritical perturbations on CIFAR-10 (configs/apbench.py) against the ResNet-18 of
  python run.py evaluate --config configs/eval/cifar10.py --noise none --workdir runs/cifar10-clean
"""
from ..apbench import attack
from .sem import get_config as sem


def get_config():
  return attack("hypo", sem(), clean="runs/cifar10-clean")
