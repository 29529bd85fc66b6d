"""Victim on the offline MNIST-5k digits: the CPU evaluation (docs/method.md protocol, shrunk).

A small CNN (width 16) trained 1000 steps at batch 128 (32 epochs of the 4000
digits), lr 0.1 x0.1 at 400 and 800. Clean standard training reaches 0.959 clean
test accuracy in ~40 s on 2 CPU cores. PGD-AT: set adv_radius (pixel levels);
10 steps of ρa/5 as the paper (~7 min at ρa 4 on 2 cores).
"""
from sem_jax.run.config import EvalConfig


def get_config() -> EvalConfig:
  return EvalConfig(
      dataset="mnist5k",
      model="small_cnn", model_width=16,
      seed=0,
      batch_size=128, train_steps=1000,                   # [40000]
      learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
      lr_decay_every=400, lr_decay_factor=0.1,            # [x0.1 at 16000, 32000]
      augment=True, augment_pad=4,
      adv_radius=0.0, adv_steps=10, adv_step_size=0.0,    # 0 = standard; step 0 = 2ρa/steps = ρa/5
      cutout_size=8,                                      # [16 at 32 px CIFAR]; digits are small
      eval_every=100, log_every=50, checkpoint_every=250,
  )
