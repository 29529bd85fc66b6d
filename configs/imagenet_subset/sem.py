"""SEM on the ImageNet subset (docs/method.md): the first 100 classes of ILSVRC-2012 (~129k
train / 5000 validation images) from TFDS imagenet2012, resized to 256x256; noise at 256x256;
the surrogate sees random-resized 224 crops with flips. ResNet-18 at 224 px, 3000 steps of 128,
lr x0.1 every 1200, ρu 8, K 7, α 2, ρa 4, 7 PGD steps of 1, J 4.

Put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in <data_dir>/downloads/manual/ and
`pip install -e '.[tfds]'`; TFDS prepares the dataset on first use. The noise table (~25 GB of
int8) is written in shards by every process (noise_format "shards"). A multi-GPU / TPU job.
"""
from sem_jax.run.config import GenerateConfig


def get_config() -> GenerateConfig:
  return GenerateConfig(
      method="sem", dataset="imagenet_subset", data_dir="",   # TFDS data_dir ("" = default)
      num_classes=100, image_size=256, crop_size=224,
      model="resnet18", seed=0,
      batch_size=128, train_steps=3000,
      learning_rate=0.1, momentum=0.9, weight_decay=5e-4, lr_decay_every=1200, lr_decay_factor=0.1,
      augment=True,
      noise_radius=8.0, noise_steps=7, noise_step_size=2.0, num_samples=4,
      adv_radius=4.0, adv_steps=7, adv_step_size=1.0, adv_norm="linf",
      noise_format="shards",
      checkpoint_every=250, log_every=10,
  )
