"""Victim architectures (parameter counts against the release's definitions, initialisation
variances, one SGD step) and the thief's defenses (filters against OpenCV, batch augmentations'
invariants)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax import defenses as D, train
from sem_jax.config import EvalConfig
from sem_jax.models import MODELS, VGG_LAYERS, create_model

# ----------------------------------------------------------------------------- architectures
# Trainable parameters of the release's models (liuyixin-louis/Stable-Unlearnable-Example,
# models/: resnet.py, vgg.py, densenet.py), counted by hand from their definitions below (the
# channel arithmetic of each __init__; PyTorch itself is not installed here); BatchNorm running
# statistics are buffers, not parameters. Two anchors tie the arithmetic to published counts.
def _conv(cin, cout, k, bias=False):
  return cin * cout * k * k + (cout if bias else 0)


def _bn(c):
  return 2 * c


def _linear(i, o):
  return i * o + o


def _release_resnet(blocks, bottleneck, classes=10, planes0=64, widths=(1, 2, 4, 8), wide=1,
                    strides=(1, 2, 2, 2)):
  """resnet.py ResNet/WRN: 3x3 stem + BN, BasicBlock / Bottleneck stages, linear."""
  n, cin = _conv(3, planes0, 3) + _bn(planes0), planes0
  for m, nb, st in zip(widths, blocks, strides):
    planes = planes0 * m
    for j in range(nb):
      stride = st if j == 0 else 1
      if bottleneck:
        out = 4 * planes
        n += (_conv(cin, planes, 1) + _bn(planes) + _conv(planes, planes, 3) + _bn(planes)
              + _conv(planes, out, 1) + _bn(out))
      else:
        out = planes * wide
        n += _conv(cin, out, 3) + _bn(out) + _conv(out, out, 3) + _bn(out)
      if stride != 1 or cin != out:
        n += _conv(cin, out, 1) + _bn(out)
      cin = out
  return n + _linear(cin, classes)


def _release_vgg(layers, classes=10):
  """vgg.py: conv(+bias)-BN per channel entry, classifier 512-512-classes."""
  n, cin = 0, 3
  for v in layers:
    if v != "M":
      n, cin = n + _conv(cin, v, 3, bias=True) + _bn(v), v
  return n + _linear(512, 512) + _linear(512, 512) + _linear(512, classes)


def _release_densenet(classes=10, growth=32, blocks=(6, 12, 24, 16), init=64, bn_size=4):
  """densenet.py (torchvision's): 7x7 stem + BN, dense layers, transitions, norm5, linear."""
  n, c = _conv(3, init, 7) + _bn(init), init
  for i, layers in enumerate(blocks):
    for l in range(layers):
      cin = c + l * growth
      n += _bn(cin) + _conv(cin, bn_size * growth, 1) + _bn(bn_size * growth)
      n += _conv(bn_size * growth, growth, 3)
    c += layers * growth
    if i < len(blocks) - 1:
      n, c = n + _bn(c) + _conv(c, c // 2, 1), c // 2
  return n + _bn(c) + _linear(c, classes)


RELEASE_PARAMS = {
    "resnet18": _release_resnet((2, 2, 2, 2), False),
    "resnet50": _release_resnet((3, 4, 6, 3), True),
    "vgg11_bn": _release_vgg(VGG_LAYERS["vgg11_bn"]),
    "vgg16_bn": _release_vgg(VGG_LAYERS["vgg16_bn"]),
    "vgg19_bn": _release_vgg(VGG_LAYERS["vgg19_bn"]),
    "densenet121": _release_densenet(),
    "wrn34_10": _release_resnet((5, 5, 5), False, planes0=16, widths=(1, 2, 4), wide=10,
                                strides=(1, 2, 2)),
}


def test_release_counts_agree_with_published_ones():
  """The hand count reproduces kuangliu's CIFAR ResNet-18 (11,173,962) and torchvision's
  DenseNet-121 at 1000 classes (7,978,856, its documentation's figure)."""
  assert RELEASE_PARAMS["resnet18"] == 11_173_962
  assert _release_densenet(classes=1000) == 7_978_856


@pytest.mark.parametrize("name", sorted(RELEASE_PARAMS))
def test_parameter_counts_match_the_release(name):
  model = create_model(name, 10)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))
  assert count == RELEASE_PARAMS[name]
  out = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))),
                                           jnp.zeros((3, 32, 32, 3))))
  assert out.shape == (3, 10)


def test_every_model_is_listed():
  assert set(RELEASE_PARAMS) | {"small_cnn", "linear"} == set(MODELS)


def _layers(params, path=()):
  """(path, {kernel, bias, scale}) of every layer holding a kernel or a BatchNorm scale."""
  if "kernel" in params or "scale" in params:
    yield path, params
    return
  for k, v in params.items():
    yield from _layers(v, path + (k,))


def _expected_kernel_variance(name, scheme, kernel):
  fan_in = int(np.prod(kernel.shape[:-1]))
  if scheme == "flax":
    return 1.0 / fan_in                        # lecun_normal
  conv = kernel.ndim == 4
  if conv and name.startswith("vgg"):
    return 2.0 / (kernel.shape[0] * kernel.shape[1] * kernel.shape[-1])   # N(0, 2/(k² out))
  if conv and name == "densenet121":
    return 2.0 / fan_in                        # kaiming_normal_
  return 1.0 / (3 * fan_in)                    # kaiming_uniform_(a=√5)


@pytest.mark.parametrize("name,scheme", [("small_cnn", "pytorch"), ("resnet18", "pytorch"),
                                         ("vgg11_bn", "pytorch"), ("densenet121", "pytorch"),
                                         ("resnet18", "flax")])
def test_initialisation_variance_per_layer_kind(name, scheme):
  """Every kernel's sample variance within 15 % of its scheme's formula (the smallest layer
  has 432 weights: ~7 % standard error); PyTorch-uniform weights and biases inside
  ±1/√fan_in; biases zero where the scheme says so; BatchNorm scale 1, bias 0."""
  model = create_model(name, 10, init=scheme)
  params = jax.jit(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3))))(jax.random.key(1))["params"]
  kinds = set()
  for path, layer in _layers(jax.device_get(params)):
    if "scale" in layer:
      assert (layer["scale"] == 1).all() and (layer["bias"] == 0).all(), path
      continue
    k = np.asarray(layer["kernel"], np.float64)
    fan_in = int(np.prod(k.shape[:-1]))
    want = _expected_kernel_variance(name, scheme, k)
    assert abs(k.var() / want - 1) < 0.15, (path, k.var(), want)
    kinds.add(("conv" if k.ndim == 4 else "dense", round(want * fan_in, 3)))
    uniform = scheme == "pytorch" and abs(want * 3 * fan_in - 1) < 1e-9
    if uniform:
      assert np.abs(k).max() <= (1 + 1e-6) / np.sqrt(fan_in)   # float32 rounding of the bound
    if "bias" in layer:
      b = np.asarray(layer["bias"])
      zero_bias = scheme == "flax" or (name.startswith("vgg") and k.ndim == 4) or (
          name == "densenet121" and k.ndim == 2)
      if zero_bias:
        assert (b == 0).all(), path
      else:
        assert np.abs(b).max() <= (1 + 1e-6) / np.sqrt(fan_in) and b.std() > 0, path
  assert any(kind == "dense" for kind, _ in kinds) and any(kind == "conv" for kind, _ in kinds)


def test_flax_scheme_reproduces_the_01_weights():
  """init="flax" keeps sem_jax 0.1's parameters bit for bit (old workdirs resume with it):
  Flax's default initialisers under the same module names."""
  import flax.linen as nn
  model = create_model("small_cnn", 10, 4, init="flax")
  got = model.init(jax.random.key(5), jnp.zeros((1, 8, 8, 1)))["params"]

  class Old(nn.Module):   # sem_jax 0.1's SmallCNN, Flax defaults
    @nn.compact
    def __call__(self, x, train=False):
      for i, mult in enumerate((1, 2, 4)):
        if i:
          x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = nn.Conv(4 * mult, (3, 3), use_bias=False)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
      return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))

  want = Old().init(jax.random.key(5), jnp.zeros((1, 8, 8, 1)))["params"]
  assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), got, want))
  other = create_model("small_cnn", 10, 4)
  assert not np.array_equal(other.init(jax.random.key(5), jnp.zeros((1, 8, 8, 1)))["params"]
                            ["Dense_0"]["kernel"], got["Dense_0"]["kernel"])


def test_vgg_drops_out_in_training_only():
  model = create_model("vgg11_bn", 10)
  v = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  x = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3), minval=-0.5, maxval=0.5)
  train_logits = lambda k: model.apply(v, x, train=True, mutable=["batch_stats"],
                                       rngs={"dropout": jax.random.key(k)})[0]
  assert not np.allclose(train_logits(1), train_logits(2))
  assert np.array_equal(model.apply(v, x), model.apply(v, x))


@pytest.mark.parametrize("name", ["resnet50", "vgg11_bn", "wrn34_10"])
def test_big_victims_take_one_sgd_step(name):
  """One real update at batch 2: finite loss, parameters and BatchNorm statistics change."""
  cfg = EvalConfig()
  model = create_model(name, 10)
  tx = train.make_optimizer(cfg)
  state = train.init_state(model, tx, jax.random.key(0), (32, 32, 3))
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3), minval=-0.5, maxval=0.5)
  new, m = jax.jit(lambda s, x, y: train.update(model, tx, s, x, y, dropout_key=jax.random.key(2))
                   )(state, x, jnp.array([1, 7]))
  assert np.isfinite(float(m["loss"])) and int(new.step) == 1
  moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params, new.params)
  assert all(jax.tree.leaves(moved))
  assert any(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.batch_stats,
                                          new.batch_stats)))


# ----------------------------------------------------------------------------- filters
@pytest.fixture(scope="module")
def real_images():
  """Real 8-bit images: 300 MNIST-5k digits (grey) and 300 scikit-image photo patches (colour)."""
  from sem_jax.datasets import load_dataset
  return {"digits": load_dataset("mnist5k").train_images[:300],
          "photos": load_dataset("skimage_photos").train_images[:300]}


OPENCV = {"mean": lambda cv2, x: cv2.blur(x, (3, 3)),
          "gaussian": lambda cv2, x: cv2.GaussianBlur(x, (3, 3), 0),
          "median": lambda cv2, x: cv2.medianBlur(x, 3),
          "bilateral": lambda cv2, x: cv2.bilateralFilter(x, 9, 75, 75)}


@pytest.mark.parametrize("kind", sorted(OPENCV))
def test_filters_equal_opencv_on_real_images(kind, real_images):
  """The release's cv2 calls, image by image, against ours with the default config: equal, or
  at most one level off on < 1 % of pixels (float32 summation order, bilateral only)."""
  cv2 = pytest.importorskip("cv2")
  for which, images in real_images.items():
    got = D.preprocess(images, (kind,), EvalConfig())
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
  got = D.preprocess(images, ("gaussian",), EvalConfig(gaussian_sigma=0.7))
  k = np.exp(-np.arange(-1, 2) ** 2 / (2 * 0.7 ** 2))
  k2 = np.outer(k, k) / np.outer(k, k).sum()
  p = np.pad(images.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  want = sum(k2[dy, dx] * p[:, dy:dy + 9, dx:dx + 7] for dy in range(3) for dx in range(3))
  assert np.abs(got.astype(int) - np.round(want)).max() <= 1
  cfg = EvalConfig(bilateral_diameter=5, bilateral_sigma_color=30.0, bilateral_sigma_space=2.0)
  got = D.preprocess(images, ("bilateral",), cfg)
  want = np.stack([cv2.bilateralFilter(im, 5, 30, 2) for im in images])
  assert np.abs(got.astype(int) - want).max() <= 1


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
