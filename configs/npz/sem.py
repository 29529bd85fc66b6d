"""SEM for your own arrays: an .npz with x_train, y_train, x_test, y_test (uint8 NHWC).

  python run.py generate --config configs/npz/sem.py --config.data_dir=/path/to/data.npz \
      --workdir runs/mine
Images keep their size. The settings are folder/sem.py's (the protection study's choice for
real data other than MNIST-5k: 400 surrogate steps, the feasible-set projection, the
surrogate's adversary at ρu/4 = 2 levels), with the 4-pixel augmentation pad of 32 px data.
Size matters: the same grey digits are held near chance at 32x32 (12.5-28.7 %) and only to
38-45 % at 16x16, whatever the settings (docs/study.md, section 4).
"""
from ..folder.sem import get_config as folder_sem


def get_config():
  return folder_sem().replace(dataset="npz", image_size=0, augment_pad=4)
