"""GUE (the game-theoretic generator) on MNIST-5k with the release's hyperparameters
(configs/robust.py): 50 epochs of 4000 images at batch 256, a constant learning rate."""
from ..robust import robust
from .sem import get_config as sem


def get_config():
  return robust("gue", sem(), train_steps=800, lr_decay_every=800, checkpoint_every=100)
