"""Per-sample augmentation: flip then zero-padded crop (CIFAR), random-resized and centre
crops (the ImageNet subset), each a function of the sample's key only."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax.core import keys as K
from sem_jax.core.augment import augment, augment_params, center_crop


def test_augment_is_flip_then_zero_padded_crop():
  x = jnp.arange(2 * 6 * 6 * 1, dtype=jnp.float32).reshape(2, 6, 6, 1) / 100 - 0.3
  keys = K.per_sample(jax.random.key(0), jnp.arange(2))
  out = np.asarray(augment(x, keys, 2))
  for i in range(2):
    flip, dy, dx = (int(v) for v in augment_params(keys[i], 2))
    v = np.asarray(x[i])[:, ::-1] if flip else np.asarray(x[i])
    p = np.pad(v, ((2, 2), (2, 2), (0, 0)), constant_values=-0.5)
    np.testing.assert_array_equal(out[i], p[dy:dy + 6, dx:dx + 6])
  # per-sample keys: a sample's augmentation does not depend on its batch
  solo = np.asarray(augment(x[1:], keys[1:], 2))
  np.testing.assert_array_equal(out[1:], solo)


@pytest.mark.slow
def test_random_resized_crop_and_centre_crop():
  """ImageNet-subset views: crops resized to the model size, differentiable back to the 256-px
  noise (bilinear weights sum to one per output pixel), a function of the sample key only."""
  x = jax.random.uniform(jax.random.key(0), (4, 40, 36, 3), minval=-0.5, maxval=0.5)
  keys = jax.random.split(jax.random.key(1), 4)
  y = augment(x, keys, 0, crop_size=24)
  assert y.shape == (4, 24, 24, 3)
  assert float(y.min()) >= float(x.min()) - 1e-6 and float(y.max()) <= float(x.max()) + 1e-6
  g = jax.grad(lambda v: augment(v, keys, 0, crop_size=24).sum())(x)
  np.testing.assert_allclose(np.asarray(g).reshape(4, -1).sum(1), 24 * 24 * 3, rtol=1e-4)
  np.testing.assert_array_equal(augment(x[1:2], keys[1:2], 0, crop_size=24), y[1:2])
  assert not np.allclose(y[0], y[1])
  c = center_crop(x, 24)
  np.testing.assert_array_equal(c, x[:, 8:32, 6:30])
