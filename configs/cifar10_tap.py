"""TAP on CIFAR-10 (SPEC section 4): 250 steps of 0.064/255 inside 8/255 toward (y + 1) mod 10,
one augmentation sample per step, against the ResNet-18 of
  python run.py evaluate --config configs/eval_cifar10.py --noise none --workdir runs/cifar10-clean
"""
from configs_common import derive


def get_config():
  return derive("cifar10_sem.py", method="tap", tap_model="runs/cifar10-clean", noise_steps=250,
                noise_step_size=0.064, num_samples=1)
