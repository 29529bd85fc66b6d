"""Flax surrogate / victim networks. Input: normalised NHWC images, any channels.

BatchNorm follows PyTorch's defaults (momentum 0.1 -> flax momentum 0.9,
eps 1e-5, scale 1, bias 0). ``train=True`` uses batch statistics and updates the
running ones (and drops out, where a model has dropout: VGG's classifier);
``train=False`` uses running statistics (crafting and attacking).

Initialisation (``init``): ``"pytorch"`` (default) gives every layer the weights
PyTorch gives the authors' release, which the paper's numbers were produced with:
conv and dense kernels U(±1/√fan_in) (``kaiming_uniform_(a=√5)``, variance
1/(3 fan_in)) and biases U(±1/√fan_in), except where the release's model sets its
own (VGG convs N(0, 2/(9 out)) with zero bias; DenseNet convs N(0, 2/fan_in), its
linear bias 0). ``"flax"``: Flax's defaults (lecun-normal kernels, variance
1/fan_in, zero biases).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from sem_jax.core.nets.apbench import APBENCH_NETS
from sem_jax.core.nets.layers import _bn, _conv, _dense

MODELS = ("small_cnn", "resnet18", "resnet50", "vgg11_bn", "vgg16_bn", "vgg19_bn", "densenet121",
          "wrn34_10", "linear", *APBENCH_NETS)   # the names create_model builds
WIDTH_MODELS = ("small_cnn", "resnet18", "resnet50")   # models whose width ``width`` sets
INITS = ("pytorch", "flax")            # initialisation schemes


class SmallCNN(nn.Module):
  """Three conv-BN-ReLU stages (width, 2w, 4w) with 2x2 average pools, global average, linear.

  Average (not max) pooling: XLA:CPU's max-pool backward (select-and-scatter)
  doubled the cost of a crafting pass.

  About 2.5 M multiply-adds per 32x32x1 image at width 16: the CPU surrogate.
  """
  num_classes: int
  width: int = 16
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  train_flag = "train"   # the argument that switches training (core.mode_switch)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    for i, mult in enumerate((1, 2, 4)):
      if i:
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
      x = _conv(x, self.width * mult, 3, self.init_scheme, dtype=self.dtype)
      x = nn.relu(_bn(train, self.dtype)()(x))
    x = jnp.mean(x, axis=(1, 2))
    return _dense(x, self.num_classes, self.init_scheme, self.dtype).astype(jnp.float32)


class BasicBlock(nn.Module):
  """conv3x3(stride)-BN-ReLU-conv3x3-BN plus the shortcut (1x1 conv + BN when the shape
  changes), then ReLU: the release's ResNet block (and, widened, its WRN block)."""
  filters: int
  strides: int = 1
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x, train: bool):
    norm = _bn(train, self.dtype)
    conv = functools.partial(_conv, init=self.init_scheme, dtype=self.dtype)
    y = conv(x, self.filters, 3, strides=self.strides, padding=1)
    y = nn.relu(norm()(y))
    y = conv(y, self.filters, 3, padding=1)
    y = norm()(y)
    if self.strides != 1 or x.shape[-1] != self.filters:
      x = conv(x, self.filters, 1, strides=self.strides)
      x = norm()(x)
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  """ResNet bottleneck: 1x1 -> 3x3 (strided) -> 1x1 (4x filters), projection shortcut when needed."""
  filters: int
  strides: int = 1
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x, train: bool):
    norm = _bn(train, self.dtype)
    conv = functools.partial(_conv, init=self.init_scheme, dtype=self.dtype)
    y = nn.relu(norm()(conv(x, self.filters, 1)))
    y = nn.relu(norm()(conv(y, self.filters, 3, strides=self.strides, padding=1)))
    y = norm()(conv(y, 4 * self.filters, 1))
    if self.strides != 1 or x.shape[-1] != 4 * self.filters:
      x = norm()(conv(x, 4 * self.filters, 1, strides=self.strides))
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """CIFAR-style ResNet-18: 3x3 stem, no max-pool, stages (64,128,256,512) x 2 BasicBlocks."""
  num_classes: int
  width: int = 64
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  dtype: Any = jnp.float32
  block: Any = None   # None = BasicBlock
  init_scheme: str = "pytorch"

  train_flag = "train"   # the argument that switches training (core.mode_switch)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _conv(x.astype(self.dtype), self.width, 3, self.init_scheme, padding=1, dtype=self.dtype)
    x = nn.relu(_bn(train, self.dtype)()(x))
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        strides = 2 if i > 0 and j == 0 else 1
        block = self.block or BasicBlock
        x = block(self.width * 2**i, strides, self.dtype, self.init_scheme)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return _dense(x, self.num_classes, self.init_scheme, self.dtype).astype(jnp.float32)


class ResNet50(ResNet18):
  """CIFAR-style ResNet-50: 3x3 stem, no max-pool, stages (3, 4, 6, 3) x Bottleneck."""
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  block: Any = Bottleneck


VGG_LAYERS = {  # channels, "M" = 2x2 max-pool (Simonyan & Zisserman configurations A, D, E)
    "vgg11_bn": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16_bn": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                 512, 512, 512, "M"),
    "vgg19_bn": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                 512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
  """The release's CIFAR VGG-BN: 3x3 conv(+bias)-BN-ReLU stacks and 2x2 max-pools, global
  average, then Dropout(0.5)-Dense(512)-ReLU-Dropout(0.5)-Dense(512)-ReLU-Dense(classes).

  PyTorch scheme: convs N(0, 2/(9·out)) with zero bias (the release's own init), dense
  layers PyTorch's default. At 32 px the five pools leave 1x1 (a pool is skipped below 2 px).
  """
  num_classes: int
  layers: Sequence[Any] = VGG_LAYERS["vgg16_bn"]
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  train_flag = "train"   # the argument that switches training (core.mode_switch)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    k_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
    for v in self.layers:
      if v == "M":
        x = nn.max_pool(x, (2, 2), strides=(2, 2)) if min(x.shape[1:3]) >= 2 else x
      else:
        x = _conv(x, v, 3, self.init_scheme, padding=1, bias=True, dtype=self.dtype,
                  kernel_init=k_init,
                  bias_init=nn.initializers.zeros)
        x = nn.relu(_bn(train, self.dtype)()(x))
    x = jnp.mean(x, axis=(1, 2))
    for _ in range(2):
      x = nn.Dropout(0.5, deterministic=not train)(x)
      x = nn.relu(_dense(x, 512, self.init_scheme, self.dtype))
    return _dense(x, self.num_classes, self.init_scheme, self.dtype).astype(jnp.float32)


class DenseNet(nn.Module):
  """The release's DenseNet-BC (torchvision's, at any input size): 7x7 stride-2 stem of 2k
  channels, BN, ReLU, 3x3 stride-2 max-pool; dense layers BN-ReLU-1x1(4k)-BN-ReLU-3x3(k)
  appended after their input; transitions BN-ReLU-1x1(half)-avgpool2; final BN-ReLU, global
  average, linear (k = growth). PyTorch scheme: convs N(0, 2/fan_in), linear bias 0."""
  num_classes: int
  blocks: Sequence[int] = (6, 12, 24, 16)   # DenseNet-121
  growth: int = 32
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  train_flag = "train"   # the argument that switches training (core.mode_switch)

  @nn.compact
  def __call__(self, x, train: bool = False):
    norm = _bn(train, self.dtype)
    conv = functools.partial(_conv, init=self.init_scheme, dtype=self.dtype,
                             kernel_init=nn.initializers.variance_scaling(2.0, "fan_in", "normal"))
    x = conv(x.astype(self.dtype), 2 * self.growth, 7, strides=2, padding=3)
    x = nn.relu(norm()(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, n in enumerate(self.blocks):
      for _ in range(n):
        y = conv(nn.relu(norm()(x)), 4 * self.growth, 1)
        y = conv(nn.relu(norm()(y)), self.growth, 3, padding=1)
        x = jnp.concatenate([x, y], axis=-1)
      if i < len(self.blocks) - 1:
        x = conv(nn.relu(norm()(x)), x.shape[-1] // 2, 1)
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = jnp.mean(nn.relu(norm()(x)), axis=(1, 2))
    return _dense(x, self.num_classes, self.init_scheme, self.dtype,
                  bias_init=nn.initializers.zeros).astype(jnp.float32)


class WideResNet(nn.Module):
  """The release's WRN-depth-k: 3x3 stem of 16, BN, ReLU, three groups of (depth-4)/6
  post-activation BasicBlocks of width 16k, 32k, 64k (strides 1, 2, 2), global average,
  linear; no final BN."""
  num_classes: int
  depth: int = 34
  widen: int = 10
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  train_flag = "train"   # the argument that switches training (core.mode_switch)

  @nn.compact
  def __call__(self, x, train: bool = False):
    n = (self.depth - 4) // 6
    x = _conv(x.astype(self.dtype), 16, 3, self.init_scheme, padding=1, dtype=self.dtype)
    x = nn.relu(_bn(train, self.dtype)()(x))
    for g, width in enumerate((16, 32, 64)):
      for j in range(n):
        x = BasicBlock(width * self.widen, 2 if g > 0 and j == 0 else 1, self.dtype,
                       self.init_scheme)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return _dense(x, self.num_classes, self.init_scheme, self.dtype).astype(jnp.float32)


class Linear(nn.Module):
  """Flatten and one dense layer: the tiny model of the gradient-reference tests."""
  num_classes: int
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  train_flag = "train"   # the argument that switches training (core.mode_switch)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.reshape(x.shape[0], -1).astype(self.dtype)
    return _dense(x, self.num_classes, self.init_scheme, self.dtype).astype(jnp.float32)


def create_model(name: str, num_classes: int, width: int = 0, dtype: str = "float32",
                 init: str = "pytorch") -> nn.Module:
  """Build a model by config name; width 0 means the model's default (first-stage channels);
  ``init``: "pytorch" (the release's initialisation) or "flax" (Flax's defaults).

  Example:
    >>> from sem_jax import core
    >>> type(core.create_model("resnet18", 10)).__name__
    'ResNet18'
  """
  dt = jnp.dtype(dtype)
  if width and name not in WIDTH_MODELS:
    raise ValueError(f"model_width applies to {', '.join(WIDTH_MODELS)}, not {name!r}")
  if init not in INITS:
    raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
  if name == "small_cnn":
    return SmallCNN(num_classes, width or 16, dt, init)
  if name == "resnet18":
    return ResNet18(num_classes, width or 64, dtype=dt, init_scheme=init)
  if name == "resnet50":
    return ResNet50(num_classes, width or 64, dtype=dt, init_scheme=init)
  if name in VGG_LAYERS:
    return VGG(num_classes, VGG_LAYERS[name], dt, init)
  if name == "densenet121":
    return DenseNet(num_classes, dtype=dt, init_scheme=init)
  if name == "wrn34_10":
    return WideResNet(num_classes, 34, 10, dt, init)
  if name == "linear":
    return Linear(num_classes, dt, init)
  if name in APBENCH_NETS:
    return APBENCH_NETS[name](num_classes, dtype=dt, init_scheme=init)
  raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
