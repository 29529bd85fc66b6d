"""Hypocritical perturbations on cifar100 (configs/apbench.py) against the ResNet-18 of
  python run.py evaluate --config configs/eval/cifar10.py --config.dataset=cifar100 --noise none \
      --workdir runs/cifar100-clean
"""
from ..apbench import attack
from .sem import get_config as sem


def get_config():
  return attack("hypo", sem(), clean="runs/cifar100-clean")
