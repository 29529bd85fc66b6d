"""Hypocritical perturbations on svhn (configs/apbench.py) against the ResNet-18 of
  python run.py evaluate --config configs/eval/cifar10.py --config.dataset=svhn --noise none \
      --workdir runs/svhn-clean
"""
from ..apbench import attack
from .sem import get_config as sem


def get_config():
  return attack("hypo", sem(), clean="runs/svhn-clean")
