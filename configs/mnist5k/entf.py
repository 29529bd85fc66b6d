"""EntF-push on MNIST-5k with the release's hyperparameters (configs/robust.py), against the
adversarially trained (ρa 4) reference model of
  python run.py evaluate --config configs/eval/mnist5k.py --noise none \\
      --config.adv_radius=4 --workdir runs/robust-mnist5k
"""
from ..robust import robust
from .sem import get_config as sem


def get_config():
  return robust("entf", sem(), reference="runs/robust-mnist5k")
