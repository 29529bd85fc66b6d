"""GUE (the game-theoretic generator) on SVHN with the release's hyperparameters
(configs/robust.py): 50 epochs of 73257 images at batch 256, a constant learning rate. Needs the tfds extra."""
from ..robust import robust
from .sem import get_config as sem


def get_config():
  return robust("gue", sem(), train_steps=14350, lr_decay_every=14350, checkpoint_every=100)
