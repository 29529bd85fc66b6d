"""The dataset type: the offline MNIST-5k split, validation of raw arrays, the published image
of a whole table."""
import numpy as np
import pytest

from sem_jax.core.units import protect
from sem_jax.data import rows as R
from sem_jax.data.dataset import make_dataset
from sem_jax.data.sources import load_mnist5k
from sem_jax.errors import SemJaxError


def test_mnist5k_split_is_fixed_stratified_and_padded():
  a, b = load_mnist5k(), load_mnist5k()
  assert a.train_images.shape == (4000, 32, 32, 1) and a.test_images.shape == (1000, 32, 32, 1)
  assert a.train_images.dtype == np.uint8 and a.num_classes == 10
  np.testing.assert_array_equal(a.train_labels, b.train_labels)
  assert (np.bincount(a.train_labels) == 400).all() and (np.bincount(a.test_labels) == 100).all()
  assert a.train_images[:, :2].max() == 0 and a.train_images[:, :, -2:].max() == 0  # padding
  assert a.train_images.max() == 255
  # train and test are disjoint digits
  tr = {x.tobytes() for x in a.train_images}
  assert sum(x.tobytes() in tr for x in a.test_images) < 5


def test_float_images_must_be_integral_levels():
  y = np.array([0, 1])
  with pytest.raises(SemJaxError, match="fractional"):
    make_dataset("t", np.full((2, 4, 4, 1), 0.5), y, np.zeros((2, 4, 4, 1)), y)
  with pytest.raises(SemJaxError, match="outside"):
    make_dataset("t", np.full((2, 4, 4, 1), 256.0), y, np.zeros((2, 4, 4, 1)), y)
  ds = make_dataset("t", np.full((2, 4, 4), 7.0), y, np.zeros((2, 4, 4, 1)), y)
  assert ds.train_images.dtype == np.uint8 and ds.train_images.shape == (2, 4, 4, 1)


def test_protect_is_clipped_uint8_addition():
  x = np.array([0, 5, 250, 255], np.uint8)
  n = np.array([-8, -8, 8, 8], np.int8)
  np.testing.assert_array_equal(protect(x, n), [0, 0, 255, 255])
  # chunked over rows: equal to the whole-table int16 formula, every row written
  rng = np.random.default_rng(0)
  xs = rng.integers(0, 256, (37, 3, 2), dtype=np.uint8)
  ns = rng.integers(-8, 9, (37, 3, 2)).astype(np.int8)
  want = np.clip(xs.astype(int) + ns, 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(protect(xs, ns), want)
  np.testing.assert_array_equal(R.materialize(R.Protected(xs, ns), size=5), want)
  with pytest.raises(ValueError, match="noise shape"):
    protect(xs, ns[:3])
  with pytest.raises(ValueError, match="noise shape"):
    R.Protected(xs, ns[:3])
