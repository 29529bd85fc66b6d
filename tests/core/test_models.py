"""The networks: parameter counts against the release's definitions and published counts,
initialisation variances, shapes, dropout."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax.core.nets.models import MODELS, VGG_LAYERS, create_model

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


def _params(name, classes=10):
  model = create_model(name, classes)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))


def test_models_have_the_published_parameter_counts():
  """Our ResNet-18 has kuangliu's CIFAR ResNet-18's 11,173,962 parameters and our DenseNet-121
  at 1000 classes torchvision's 7,978,856 (its documentation's figure): published numbers, not
  the hand counts below, so a wrong layer and a wrong hand count cannot agree by accident."""
  assert _params("resnet18") == 11_173_962
  assert _params("densenet121", 1000) == 7_978_856


@pytest.mark.parametrize("name", sorted(RELEASE_PARAMS))
def test_parameter_counts_match_the_release(name):
  model = create_model(name, 10)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))
  assert count == RELEASE_PARAMS[name]
  out = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))),
                                           jnp.zeros((3, 32, 32, 3))))
  assert out.shape == (3, 10)


def test_every_listed_model_is_built_and_unknown_names_are_refused():
  """Every name a config may give builds a network with one logit per class; the release's
  models are all counted above; an unknown name and a width for a fixed-width model raise."""
  for name in MODELS:
    model = create_model(name, 7)
    v = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
    assert jax.eval_shape(model.apply, v, jnp.zeros((2, 32, 32, 3))).shape == (2, 7)
  assert set(RELEASE_PARAMS) <= set(MODELS)
  with pytest.raises(ValueError, match="unknown model"):
    create_model("resnet19", 10)
  with pytest.raises(ValueError, match="model_width"):
    create_model("vgg11_bn", 10, width=32)


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_flax_scheme_is_flax_defaults_under_the_same_names():
  """init="flax" gives Flax's default initialisers' parameters bit for bit under the same
  module names (workdirs made with it resume)."""
  import flax.linen as nn
  model = create_model("small_cnn", 10, 4, init="flax")
  got = model.init(jax.random.key(5), jnp.zeros((1, 8, 8, 1)))["params"]

  class Old(nn.Module):   # SmallCNN with Flax's default initialisers
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


@pytest.mark.slow
def test_vgg_drops_out_in_training_only():
  model = create_model("vgg11_bn", 10)
  v = jax.jit(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3))))(jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3), minval=-0.5, maxval=0.5)
  train_logits = jax.jit(lambda k: model.apply(v, x, train=True, mutable=["batch_stats"],
                                               rngs={"dropout": k})[0])
  assert not np.allclose(train_logits(jax.random.key(1)), train_logits(jax.random.key(2)))
  test_logits = jax.jit(lambda k: model.apply(v, x, rngs={"dropout": k}))
  assert np.array_equal(test_logits(jax.random.key(1)), test_logits(jax.random.key(2)))


@pytest.mark.parametrize("name,shape,classes", [("small_cnn", (32, 32, 1), 10),
                                                ("small_cnn", (24, 24, 3), 7),
                                                ("resnet18", (32, 32, 3), 100),
                                                ("linear", (8, 8, 2), 3)])
def test_model_shapes(name, shape, classes):
  m = create_model(name, classes)
  v = jax.eval_shape(lambda: m.init(jax.random.key(0), jnp.zeros((1, *shape)), train=False))
  out = jax.eval_shape(lambda v: m.apply(v, jnp.zeros((2, *shape)), train=False), v)
  assert out.shape == (2, classes)
  if name == "resnet18":
    n = sum(np.prod(p.shape) for p in jax.tree.leaves(v["params"]))
    assert 11.1e6 < n < 11.3e6  # the CIFAR ResNet-18 has ~11.2M parameters
