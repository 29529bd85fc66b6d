"""Victim architectures (parameter counts against the PyTorch references, one SGD step) and the
thief's defenses (filters against a float64 numpy reference, batch augmentations' invariants)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax import defenses as D, train
from sem_jax.config import EvalConfig
from sem_jax.models import MODELS, create_model

# Trainable parameters of the CIFAR-10 PyTorch models the field uses (kuangliu/pytorch-cifar
# ResNet/VGG/DenseNet, the TRADES WideResNet); BatchNorm running statistics are not parameters.
TORCH_PARAMS = {"resnet18": 11_173_962, "resnet50": 23_520_842, "vgg11_bn": 9_231_114,
                "vgg16_bn": 14_728_266, "vgg19_bn": 20_040_522, "densenet121": 6_956_298,
                "wrn34_10": 46_160_474}


@pytest.mark.parametrize("name", sorted(TORCH_PARAMS))
def test_parameter_counts_match_pytorch(name):
  model = create_model(name, 10)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))
  assert count == TORCH_PARAMS[name]
  out = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))),
                                           jnp.zeros((3, 32, 32, 3))))
  assert out.shape == (3, 10)


def test_every_model_is_listed():
  assert set(TORCH_PARAMS) | {"small_cnn", "linear"} == set(MODELS)


@pytest.mark.parametrize("name", ["resnet50", "vgg11_bn", "densenet121", "wrn34_10"])
def test_big_victims_take_one_sgd_step(name):
  """One real update at batch 2: finite loss, parameters and BatchNorm statistics change."""
  cfg = EvalConfig()
  model = create_model(name, 10)
  tx = train.make_optimizer(cfg)
  state = train.init_state(model, tx, jax.random.key(0), (32, 32, 3))
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3), minval=-0.5, maxval=0.5)
  new, m = jax.jit(lambda s, x, y: train.update(model, tx, s, x, y))(state, x, jnp.array([1, 7]))
  assert np.isfinite(float(m["loss"])) and int(new.step) == 1
  moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params, new.params)
  assert all(jax.tree.leaves(moved))
  assert any(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.batch_stats,
                                          new.batch_stats)))


# ----------------------------------------------------------------------------- filters
def _reference(images, kind, sigma=1.0, sigma_color=75.0, sigma_space=75.0):
  """float64 per-pixel loops over the 3x3 window (reflect borders), rounded to uint8."""
  x = images.astype(np.float64)
  p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  n, h, w, c = x.shape
  out = np.zeros_like(x)
  offs = [(dy, dx) for dy in range(3) for dx in range(3)]
  g = np.array([np.exp(-((dy - 1) ** 2 + (dx - 1) ** 2) / (2 * sigma ** 2)) for dy, dx in offs])
  s = np.array([np.exp(-((dy - 1) ** 2 + (dx - 1) ** 2) / (2 * sigma_space ** 2)) for dy, dx in offs])
  for b in range(n):
    for i in range(h):
      for j in range(w):
        win = np.stack([p[b, i + dy, j + dx] for dy, dx in offs])   # (9, c)
        if kind == "mean":
          out[b, i, j] = win.mean(0)
        elif kind == "gaussian":
          out[b, i, j] = (g[:, None] * win).sum(0) / g.sum()
        elif kind == "median":
          out[b, i, j] = np.median(win, axis=0)
        else:
          wgt = s * np.exp(-((win - x[b, i, j]) ** 2).sum(1) / (2 * sigma_color ** 2))
          out[b, i, j] = (wgt[:, None] * win).sum(0) / wgt.sum()
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["mean", "gaussian", "median", "bilateral"])
def test_filters_match_float64_reference(kind):
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (2, 7, 6, 3)).astype(np.uint8)
  cfg = EvalConfig(gaussian_sigma=0.7, bilateral_sigma_color=30.0, bilateral_sigma_space=1.5)
  got = D.preprocess(images, (kind,), cfg)
  want = _reference(images, kind, 0.7, 30.0, 1.5)
  assert got.dtype == np.uint8 and got.shape == images.shape
  # float32 vs float64 may round a .5 differently: at most one level, rarely.
  diff = np.abs(got.astype(int) - want.astype(int))
  assert diff.max() <= 1 and (diff > 0).mean() < 0.02
  assert not np.array_equal(got, images)


def test_median_removes_an_isolated_speck_and_keeps_flat_regions():
  images = np.full((1, 5, 5, 1), 100, np.uint8)
  images[0, 2, 2] = 255
  out = D.preprocess(images, ("median",), EvalConfig())
  assert (out == 100).all()
  assert (D.preprocess(images[:, :, :, :] * 0 + 7, ("mean", "gaussian"), EvalConfig()) == 7).all()


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


def test_random_resized_crop_and_centre_crop():
  """ImageNet-subset views: crops resized to the model size, differentiable back to the 256-px
  noise (bilinear weights sum to one per output pixel), a function of the sample key only."""
  from sem_jax.augment import augment, center_crop
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
