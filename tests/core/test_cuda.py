"""CUDA (core.poisons.cuda): class filters drawn as the release draws them, images convolved
per class as scipy.ndimage convolves them, and the budget check that verify runs."""
import jax
import numpy as np
import pytest
from scipy import ndimage

from sem_jax.core.crafting import budgets
from sem_jax.core.poisons import cuda


def _images(n=12, size=9, channels=3, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (n, size, size, channels)).astype(np.uint8)
  x[0] = 0                                   # an all-black image stays black
  return x, np.arange(n) % 4


def test_filters_are_seeded_bounded_and_hold_one_1():
  f = cuda.filters(jax.random.key(3), 10, 3, 0.3)
  assert f.shape == (10, 3, 3) and f.dtype == np.float64
  assert ((f == 1.0).reshape(10, -1).sum(1) == 1).all()
  rest = np.where(f == 1.0, 0.0, f)
  assert (rest >= 0).all() and (rest <= 0.3).all() and rest.max() > 0.2
  assert np.array_equal(f, cuda.filters(jax.random.key(3), 10, 3, 0.3))
  assert not np.array_equal(f, cuda.filters(jax.random.key(4), 10, 3, 0.3))
  assert len({a.tobytes() for a in f}) == 10                   # a filter per class
  assert cuda.valid_filters(f, 3, 0.3) and not cuda.valid_filters(f, 3, 0.2)
  assert not cuda.valid_filters(f * 0.5, 3, 0.3)               # no entry is 1 any more
  assert cuda.filters(jax.random.key(0), 2, 5, 0.1).shape == (2, 5, 5)
  for size, blur in ((2, 0.3), (3, 0.0), (3, 1.5)):
    with pytest.raises(ValueError):
      cuda.filters(jax.random.key(0), 2, size, blur)


def test_published_images_are_scipys_per_class_correlation_rescaled_to_the_max():
  """The reference: scipy.ndimage.correlate (PyTorch's conv2d is a cross-correlation) with
  zero padding, each channel alone, then x 255 / the image's max, clipped and truncated."""
  x, y = _images()
  f = cuda.filters(jax.random.key(1), 4, 3, 0.3)
  got = cuda.publish(x, y, f)
  for i in range(len(x)):
    img = x[i].astype(np.float64) / 255
    conv = np.stack([ndimage.correlate(img[..., c], f[y[i]], mode="constant", cval=0.0)
                     for c in range(img.shape[-1])], -1)
    want = np.zeros_like(conv) if conv.max() == 0 else conv * 255 / conv.max()
    want = np.trunc(np.clip(want, 0, 255)).astype(np.uint8)
    assert np.abs(got[i].astype(int) - want).max() <= 1, i     # float order: at most 1 level
    assert (got[i] == want).mean() > 0.99
  assert (got[0] == 0).all()
  d = cuda.noise(x, y, f)
  assert d.dtype == np.int16 and np.array_equal(x.astype(np.int16) + d, got)


def test_the_budget_check_recomputes_every_image_from_its_class_filter():
  x, y = _images()
  f = cuda.filters(jax.random.key(1), 4, 3, 0.3)
  d = cuda.noise(x, y, f)
  b = budgets.conv(3, 0.3, f)
  assert budgets.storage_dtype(b) == np.int16 and "3x3 filters" in budgets.describe(b)
  with pytest.raises(ValueError, match="checked against its filters"):
    budgets.outside(b, d, x, y)           # the norm layer cannot check it: it says which can
  from sem_jax.run import specs
  assert not specs.outside(b, d, x, y).any() and specs.block_violations(b, d + 1, x, y) > 0
  assert not cuda.outside(b, d, x, y).any() and not cuda.outside(b, d, x).any()
  moved = d.copy()
  moved[5, 2, 2, 1] += 1 if x[5, 2, 2, 1] + d[5, 2, 2, 1] < 255 else -1   # one level of one pixel
  assert cuda.outside(b, moved, x, y).tolist() == [i == 5 for i in range(len(x))]
  other = d.copy()
  other[6] = cuda.noise(x[6:7], np.array([(y[6] + 1) % 4]), f)[0]   # another class's filter
  assert cuda.outside(b, other, x, y)[6] and not cuda.outside(b, other, x)[6]
  assert cuda.outside(budgets.conv(3, 0.2, f), d, x, y).all()     # filters over the blur
  assert cuda.outside(budgets.conv(3, 0.3), d, x, y).all()        # no filters recorded
  assert cuda.outside(b, d, None, y).all()                        # no clean images
