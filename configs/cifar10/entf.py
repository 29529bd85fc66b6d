"""EntF-push on CIFAR-10 with the release's hyperparameters (configs/robust.py), against the
adversarially trained (ρa 4) reference model of Needs the tfds extra.
  python run.py evaluate --config configs/eval/cifar10.py --config.dataset=cifar10 --noise none \\
      --config.adv_radius=4 --workdir runs/robust-cifar10
"""
from ..robust import robust
from .sem import get_config as sem


def get_config():
  return robust("entf", sem(), reference="runs/robust-cifar10")
