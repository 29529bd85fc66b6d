"""Victim on the ImageNet subset (docs/method.md): ResNet-18 on random-resized 224 crops of the
256 px protected images, tested on 224 centre crops of the clean validation images; PGD-AT at
ρa 4 with 8 steps of 1/255. Schedule as the CIFAR protocol scaled to the subset (an assumption:
the paper gives no ImageNet victim schedule): 40000 steps of 128, x0.1 at 16000 and 32000.
"""
from sem_jax.run.config import EvalConfig


def get_config() -> EvalConfig:
  return EvalConfig(
      dataset="imagenet_subset", data_dir="", num_classes=100, image_size=256, crop_size=224,
      model="resnet18", seed=0, batch_size=128, train_steps=40000,
      learning_rate=0.1, momentum=0.9, weight_decay=5e-4, lr_decay_every=16000,
      augment=True, adv_radius=4.0, adv_steps=8, adv_step_size=1.0,
      eval_every=2000, log_every=100, checkpoint_every=2000,
  )
