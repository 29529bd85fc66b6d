"""verify states how much of a noise is non-zero, and says so plainly when the published images
are, but for a few values, the clean ones (GUE's generator on MNIST-5k wrote such a noise)."""
import numpy as np

from sem_jax.commands.verify import _nonzero_line
from sem_jax.data import rows as R


def _counts(noise):
  return R.abs_stats(noise)[1], noise.size


def test_a_noise_that_is_almost_all_zero_is_named_as_one_that_cannot_protect():
  noise = np.zeros((100, 8, 8, 1), np.int8)
  noise[3, 2, 2, 0] = 1
  assert R.abs_stats(noise, size=7) == (1, 1)          # counted across blocks
  line = _nonzero_line("n.npy", *_counts(noise))
  assert line.startswith("n.npy: 1 of 6400 values non-zero (0.0156 %); NOTE:")
  assert "cannot protect" in line
  noise[:50] = 3
  line = _nonzero_line("n.npy", *_counts(noise))
  assert line == "n.npy: 3200 of 6400 values non-zero (50 %)"
