"""TAP on CIFAR-10 (docs/method.md): 250 steps of 0.064/255 inside 8/255 toward (y + 1) mod 10,
one augmentation sample per step, against the ResNet-18 of
  python run.py evaluate --config configs/eval/cifar10.py --noise none --workdir runs/cifar10-clean
"""
from .sem import get_config as sem


def get_config():
  return sem().replace(method="tap", tap_model="runs/cifar10-clean", noise_steps=250,
                noise_step_size=0.064, num_samples=1)
