"""The leaderboard (configs/study/leaderboard_mnist5k.py: every attack against every defense, at
the same CPU protocol) on the 32 px digits: scikit-learn's 8x8 digits upsampled 2x and padded to
32x32 (``digits32.npz``, built by ``python tools/variant_data.py runs/variants``; the folder is
$SEM_JAX_VARIANT_DATA, default runs/variants). Its files are stemmed ``board_digits32`` and its
experiments named ``board32-*``; its leaderboard.* files are written in the workdir, so give it a
workdir of its own.

  python tools/variant_data.py runs/variants
  python run.py study --config configs/study/leaderboard_digits32.py --workdir runs/board32
"""
import os

from sem_jax.suites.study import StudyConfig

from .leaderboard_mnist5k import board
from .variants import data_dir


def get_config() -> StudyConfig:
  return board(name="board_digits32", title="attacks x defenses on the 32 px digits (ρu 8, CPU "
               "protocol)", prefix="board32-", dataset="npz",
               data_dir=os.path.join(data_dir(), "digits32.npz"))
