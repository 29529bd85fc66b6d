"""Visibility figures against scikit-image's reference implementations, and the noise resize."""
import numpy as np
import pytest

from sem_jax.commands.photos import noise_kept, published_photo, resize_noise
from sem_jax.core import quality


@pytest.mark.parametrize("shape", [(64, 80, 3), (9, 13, 1), (32, 32, 3)])
def test_psnr_and_ssim_equal_scikit_image(shape):
  from skimage.metrics import peak_signal_noise_ratio, structural_similarity
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, shape).astype(np.uint8)
  b = np.clip(a.astype(int) + rng.integers(-8, 9, shape), 0, 255).astype(np.uint8)
  assert quality.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), 1e-12)
  win = min(11, min(shape[:2]) if min(shape[:2]) % 2 else min(shape[:2]) - 1)
  ref = structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=255,
                              win_size=win, truncate=(win // 2) / 1.5)
  assert quality.ssim(a, b) == pytest.approx(ref, abs=1e-5)   # 11 px and up: 1e-12
  assert quality.psnr(a, a) == quality.PSNR_IDENTICAL and quality.ssim(a, a) == pytest.approx(1.0)


def test_class_mean_noise_per_channel_in_blocks():
  rng = np.random.default_rng(1)
  noise = rng.integers(-8, 9, (50, 4, 4, 3)).astype(np.int8)
  labels = rng.integers(0, 3, 50)
  got = quality.class_mean_noise(noise, labels, 3, block=7)
  for c in range(3):
    np.testing.assert_allclose(got[c], noise[labels == c].mean((0, 1, 2)), atol=1e-12)
  vis = quality.summary([30.0, 20.0], [0.9, 0.95], got, ["a.png", "b.png"], ["x", "y", "z"])
  assert vis["psnr_db_worst"] == 20.0 and vis["psnr_worst_image"] == "b.png"
  assert vis["ssim_worst_image"] == "a.png"
  cast = vis["largest_colour_cast"]
  assert abs(cast["levels"]) == pytest.approx(np.abs(got).max(), abs=1e-4)


def test_resized_noise_stays_within_the_bound_and_keeps_its_size():
  rng = np.random.default_rng(2)
  noise = rng.integers(-8, 9, (16, 16, 3)).astype(np.int8)
  assert np.array_equal(resize_noise(noise, (16, 16)), noise)
  for size in [(40, 52), (7, 9), (160, 33)]:
    up = resize_noise(noise, size)
    assert up.shape == (*size, 3) and up.dtype == np.int8 and np.abs(up).max() <= 8
  photo = rng.integers(0, 256, (40, 52, 3)).astype(np.uint8)
  pub = published_photo(photo, noise)
  assert np.abs(pub.astype(int) - photo).max() <= 8
  assert noise_kept(photo, pub, pub) == pytest.approx(1.0)
  assert noise_kept(photo, pub, photo) == pytest.approx(0.0)
