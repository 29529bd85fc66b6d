"""The thief's defenses: the filters against OpenCV on real images, JPEG and grayscale, and the
batch augmentations' invariants."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax.core.thief import defenses as D


@pytest.fixture(scope="module")
def real_images():
  """Real 8-bit images: 300 MNIST-5k digits (grey) and 300 scikit-image photo patches (colour)."""
  from sem_jax.data.sources import load_dataset
  return {"digits": load_dataset("mnist5k").train_images[:300],
          "photos": load_dataset("skimage_photos").train_images[:300]}


OPENCV = {"mean": lambda cv2, x: cv2.blur(x, (3, 3)),
          "gaussian": lambda cv2, x: cv2.GaussianBlur(x, (3, 3), 0),
          "median": lambda cv2, x: cv2.medianBlur(x, 3),
          "bilateral": lambda cv2, x: cv2.bilateralFilter(x, 9, 75, 75)}


@pytest.mark.parametrize("kind", sorted(OPENCV))
def test_filters_equal_opencv_on_real_images(kind, real_images):
  """The release's cv2 calls, image by image, against ours with the defaults: equal, or
  at most one level off on < 1 % of pixels (float32 summation order, bilateral only)."""
  cv2 = pytest.importorskip("cv2")
  for which, images in real_images.items():
    got = D.preprocess(images, (kind,))
    want = np.stack([OPENCV[kind](cv2, im).reshape(im.shape) for im in images])
    diff = np.abs(got.astype(int) - want.astype(int))
    assert got.dtype == np.uint8 and got.shape == images.shape
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (which, diff.max(), (diff > 0).mean())
    if kind != "bilateral":
      assert diff.max() == 0, which
    assert not np.array_equal(got, images)


def test_gaussian_with_a_sigma_and_bilateral_parameters():
  """gaussian_sigma > 0: the sampled, normalised 3x3 Gaussian (float64 reference, ±1 level);
  a small bilateral window against OpenCV's at the same d, σc, σs."""
  cv2 = pytest.importorskip("cv2")
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (2, 9, 7, 3)).astype(np.uint8)
  got = D.preprocess(images, ("gaussian",), gaussian_sigma=0.7)
  k = np.exp(-np.arange(-1, 2) ** 2 / (2 * 0.7 ** 2))
  k2 = np.outer(k, k) / np.outer(k, k).sum()
  p = np.pad(images.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  want = sum(k2[dy, dx] * p[:, dy:dy + 9, dx:dx + 7] for dy in range(3) for dx in range(3))
  assert np.abs(got.astype(int) - np.round(want)).max() <= 1
  got = D.preprocess(images, ("bilateral",), bilateral_diameter=5, bilateral_sigma_color=30.0,
                     bilateral_sigma_space=2.0)
  want = np.stack([cv2.bilateralFilter(im, 5, 30, 2) for im in images])
  assert np.abs(got.astype(int) - want).max() <= 1


def test_median_removes_an_isolated_speck_and_keeps_flat_regions():
  images = np.full((1, 5, 5, 1), 100, np.uint8)
  images[0, 2, 2] = 255
  out = D.preprocess(images, ("median",))
  assert (out == 100).all()
  assert (D.preprocess(images[:, :, :, :] * 0 + 7, ("mean", "gaussian")) == 7).all()


def test_grayscale_and_jpeg():
  img = np.zeros((1, 8, 8, 3), np.uint8)
  img[..., 0] = 200
  gray = D.grayscale(img)
  assert (gray == round(0.299 * 200)).all() and gray.shape == img.shape
  rng = np.random.default_rng(0)
  smooth = np.repeat(np.repeat(rng.integers(0, 256, (4, 4, 4, 3)), 8, 1), 8, 2).astype(np.uint8)
  hi = D.jpeg(smooth, 95)
  lo = D.jpeg(smooth, 5)
  err = lambda a: np.abs(a.astype(int) - smooth.astype(int)).mean()
  assert err(hi) < 0.5 * err(lo)       # 4:2:0 chroma subsampling costs a few levels even at 95
  assert np.array_equal(D.jpeg(smooth, 95), hi)  # deterministic
  mono = D.jpeg(smooth[..., :1], 50)
  assert mono.shape == smooth[..., :1].shape and mono.dtype == np.uint8


def test_cutout_zeroes_one_square_per_image():
  x = jnp.full((16, 12, 12, 2), 0.3)
  keys = jax.random.split(jax.random.key(0), 16)
  out = np.asarray(D.cutout(x, keys, 4))
  for img in out:
    zero = (img == 0.0).all(-1)
    rows, cols = np.nonzero(zero)
    assert 0 < zero.sum() <= 16
    # the zeros form one axis-aligned box
    assert zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    assert (img[~zero] == np.float32(0.3)).all()
  assert not np.array_equal(out[0], out[1]) or not np.array_equal(out[1], out[2])


def test_mixup_and_cutmix_are_consistent_with_their_labels():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.uniform(-0.5, 0.5, (8, 10, 10, 1)), jnp.float32)
  y = jnp.arange(8)
  xm, ya, yb, lam = D.mixup(x, y, jax.random.key(2), 1.0)
  perm = np.asarray(yb)                       # labels are the indices, so y2 reveals π
  assert sorted(perm.tolist()) == list(range(8)) and np.array_equal(ya, y)
  np.testing.assert_allclose(xm, lam * x + (1 - lam) * x[perm], rtol=1e-6, atol=1e-6)
  assert 0 <= float(lam) <= 1
  xc, ya, yb, lam = D.cutmix(x, y, jax.random.key(5), 1.0)
  perm = np.asarray(yb)
  from_partner = np.asarray((xc == x[perm]) & (xc != x))[..., 0]
  from_self = np.asarray(xc == x)[..., 0]
  assert (from_partner | from_self).all()
  # λ' is the share of pixels that still come from the image itself
  pasted = np.asarray(jnp.all(xc == x[perm], axis=-1) & ~jnp.all(x == x[perm], axis=-1))
  np.testing.assert_allclose(1 - pasted[0].mean(), float(lam), atol=1e-6)
