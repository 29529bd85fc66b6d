"""SEM on CIFAR-10 with the paper's defaults (docs/method.md). Needs the tfds extra.

5000 surrogate steps at batch 128 with CIFAR ResNet-18, PGD-AT at ρa = 4/255
(10 steps of 0.8/255); crafting K=10 steps of 1.6/255 inside ρu = 8/255, J=5.
"""
from sem_jax.run.config import GenerateConfig


def get_config() -> GenerateConfig:
  return GenerateConfig(
      method="sem",            # stable error-minimizing noise
      dataset="cifar10",       # TFDS cifar10 (data_dir: the TFDS data directory)
      model="resnet18",        # CIFAR-style ResNet-18 (3x3 stem, no max-pool)
      seed=0,
      batch_size=128,          # [128]
      train_steps=5000,        # [5000]
      learning_rate=0.1, momentum=0.9, weight_decay=5e-4,   # SGD [0.1, 0.9, 5e-4]
      lr_decay_every=2000, lr_decay_factor=0.1,             # x0.1 every 2000 steps
      augment=True, augment_pad=4,                          # flip + 4 px pad-and-crop
      noise_radius=8.0, noise_steps=10, noise_step_size=1.6, num_samples=5,  # ρu, K, α, J
      adv_radius=4.0, adv_steps=10, adv_step_size=0.8, adv_norm="linf",      # ρa, PGD
      checkpoint_every=250, log_every=10,
  )
