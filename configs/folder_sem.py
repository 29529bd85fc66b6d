"""SEM for your own photos: one sub-folder per class (or a flat folder with labels.csv).

Set the folder on the command line:
  python run.py generate --config configs/folder_sem.py --config.data_dir=/path/to/photos \
      --workdir runs/photos
Images are resized to image_size x image_size RGB. Every photo gets noise and is
exported; 20 % of each class (seeded) is also held out from training to report the
surrogate's (and a victim's) clean accuracy. Crafting and adversary use the paper's
settings; the small CNN surrogate and short schedule suit a CPU and a few hundred photos
(use model="resnet18" and more steps on a GPU).
"""
from sem_jax.config import GenerateConfig


def get_config() -> GenerateConfig:
  return GenerateConfig(
      method="sem",
      dataset="folder",
      data_dir="",             # REQUIRED: the folder of class sub-folders
      image_size=64,           # resize to 64x64 (noise lives at this resolution)
      test_fraction=0.2,
      model="small_cnn", model_width=16,
      seed=0,
      batch_size=32, train_steps=300,
      learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
      lr_decay_every=120, lr_decay_factor=0.1,
      augment=True, augment_pad=8,   # 8 px for 64 px data (SPEC section 2)
      noise_radius=8.0, noise_steps=10, noise_step_size=1.6, num_samples=3,
      adv_radius=4.0, adv_steps=10, adv_step_size=0.8,
      checkpoint_every=100, log_every=20,
  )
