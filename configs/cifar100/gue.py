"""GUE (the game-theoretic generator) on CIFAR-100 with the release's hyperparameters
(configs/robust.py): 50 epochs of 50000 images at batch 256, a constant learning rate. Needs the tfds extra."""
from ..robust import robust
from .sem import get_config as sem


def get_config():
  return robust("gue", sem(), train_steps=9800, lr_decay_every=9800, checkpoint_every=100)
