"""The paper's CIFAR-10 evaluation (docs/method.md): ResNet-18, 40000 steps at batch 128,
SGD lr 0.1 x0.1 at 16000 and 32000, wd 5e-4, flip + crop after the noise, PGD-AT at ρa
(10 steps of ρa/5). Run it for ρa in {0, 1, 2, 3, 4} with --config.adv_radius=R.

A GPU/TPU job: ~4 s per step on 2 CPU cores.
"""
from sem_jax.run.config import EvalConfig


def get_config() -> EvalConfig:
  return EvalConfig(
      dataset="cifar10", data_dir="",                     # TFDS data_dir ("" = TFDS default)
      model="resnet18", seed=0,
      batch_size=128, train_steps=40000,
      learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
      lr_decay_every=16000, lr_decay_factor=0.1,
      augment=True, augment_pad=4,
      adv_radius=0.0, adv_steps=10, adv_step_size=0.0,    # step 0 = 2ρa/steps = ρa/5
      eval_every=2000, log_every=100, checkpoint_every=2000,
  )
