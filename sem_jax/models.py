"""Flax surrogate / victim networks. Input: normalised NHWC images, any channels.

BatchNorm follows PyTorch's defaults (momentum 0.1 -> flax momentum 0.9,
eps 1e-5). ``train=True`` uses batch statistics and updates the running ones;
``train=False`` uses running statistics (crafting and attacking).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from sem_jax import config as _config

MODELS, WIDTH_MODELS = _config.MODELS, _config.WIDTH_MODELS   # config names of the models below


def _bn(train: bool, dtype: Any):
  return functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                           epsilon=1e-5, dtype=dtype)


class SmallCNN(nn.Module):
  """Three conv-BN-ReLU stages (width, 2w, 4w) with 2x2 average pools, global average, linear.

  Average (not max) pooling: XLA:CPU's max-pool backward (select-and-scatter)
  doubled the cost of a crafting pass.

  About 2.5 M multiply-adds per 32x32x1 image at width 16: the CPU surrogate.
  """
  num_classes: int
  width: int = 16
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    for i, mult in enumerate((1, 2, 4)):
      if i:
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
      x = nn.Conv(self.width * mult, (3, 3), use_bias=False, dtype=self.dtype)(x)
      x = nn.relu(_bn(train, self.dtype)()(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class BasicBlock(nn.Module):
  filters: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    norm = _bn(train, self.dtype)
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    y = conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(x)
    y = nn.relu(norm()(y))
    y = conv(self.filters, (3, 3), padding=1)(y)
    y = norm()(y)
    if self.strides != 1 or x.shape[-1] != self.filters:
      x = conv(self.filters, (1, 1), (self.strides, self.strides))(x)
      x = norm()(x)
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """CIFAR-style ResNet-18: 3x3 stem, no max-pool, stages (64,128,256,512) x 2 BasicBlocks."""
  num_classes: int
  width: int = 64
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  dtype: Any = jnp.float32
  block: Any = None   # None = BasicBlock

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    x = nn.Conv(self.width, (3, 3), padding=1, use_bias=False, dtype=self.dtype)(x)
    x = nn.relu(_bn(train, self.dtype)()(x))
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = (self.block or BasicBlock)(self.width * 2**i, strides, self.dtype)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class Bottleneck(nn.Module):
  """ResNet bottleneck: 1x1 -> 3x3 (strided) -> 1x1 (4x filters), projection shortcut when needed."""
  filters: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    norm = _bn(train, self.dtype)
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    y = nn.relu(norm()(conv(self.filters, (1, 1))(x)))
    y = nn.relu(norm()(conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(y)))
    y = norm()(conv(4 * self.filters, (1, 1))(y))
    if self.strides != 1 or x.shape[-1] != 4 * self.filters:
      x = norm()(conv(4 * self.filters, (1, 1), (self.strides, self.strides))(x))
    return nn.relu(x + y)


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
  """CIFAR VGG with BatchNorm: 3x3 conv(+bias)-BN-ReLU stacks, max-pools, global average, linear.

  At 32 px the five pools leave 1x1, so the global average equals the usual flatten.
  """
  num_classes: int
  layers: Sequence[Any] = VGG_LAYERS["vgg16_bn"]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    for v in self.layers:
      if v == "M":
        x = nn.max_pool(x, (2, 2), strides=(2, 2)) if min(x.shape[1:3]) >= 2 else x
      else:
        x = nn.relu(_bn(train, self.dtype)()(nn.Conv(v, (3, 3), padding=1, dtype=self.dtype)(x)))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class DenseNet(nn.Module):
  """CIFAR DenseNet-BC: 3x3 stem of 2k channels, dense blocks of BN-ReLU-1x1(4k)-BN-ReLU-3x3(k),
  transitions BN-ReLU-1x1(x0.5)-avgpool2, final BN-ReLU, global average, linear (k = growth)."""
  num_classes: int
  blocks: Sequence[int] = (6, 12, 24, 16)   # DenseNet-121
  growth: int = 32
  reduction: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    norm = _bn(train, self.dtype)
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    x = conv(2 * self.growth, (3, 3), padding=1)(x.astype(self.dtype))
    for i, n in enumerate(self.blocks):
      for _ in range(n):
        y = conv(4 * self.growth, (1, 1))(nn.relu(norm()(x)))
        y = conv(self.growth, (3, 3), padding=1)(nn.relu(norm()(y)))
        x = jnp.concatenate([y, x], axis=-1)
      if i < len(self.blocks) - 1:
        x = conv(int(x.shape[-1] * self.reduction), (1, 1))(nn.relu(norm()(x)))
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = jnp.mean(nn.relu(norm()(x)), axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class WideBlock(nn.Module):
  """Pre-activation wide block: BN-ReLU-3x3(stride)-BN-ReLU-3x3, 1x1 shortcut when the width
  changes (taken from the activated input, as in Zagoruyko & Komodakis)."""
  filters: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    norm = _bn(train, self.dtype)
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    same = x.shape[-1] == self.filters and self.strides == 1
    a = nn.relu(norm()(x))
    y = conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(a)
    y = conv(self.filters, (3, 3), padding=1)(nn.relu(norm()(y)))
    short = x if same else conv(self.filters, (1, 1), (self.strides, self.strides))(a)
    return short + y


class WideResNet(nn.Module):
  """WRN-depth-k: 3x3 stem of 16, three groups of (depth-4)/6 wide blocks (16k, 32k, 64k)."""
  num_classes: int
  depth: int = 34
  widen: int = 10
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    n = (self.depth - 4) // 6
    x = nn.Conv(16, (3, 3), padding=1, use_bias=False, dtype=self.dtype)(x.astype(self.dtype))
    for g, width in enumerate((16, 32, 64)):
      for j in range(n):
        x = WideBlock(width * self.widen, 2 if g > 0 and j == 0 else 1, self.dtype)(x, train)
    x = jnp.mean(nn.relu(_bn(train, self.dtype)()(x)), axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class Linear(nn.Module):
  """Flatten and one dense layer: the tiny model of the gradient-reference tests."""
  num_classes: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.reshape(x.shape[0], -1).astype(self.dtype)
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)




def create_model(name: str, num_classes: int, width: int = 0, dtype: str = "float32") -> nn.Module:
  """Build a model by config name; width 0 means the model's default (first-stage channels)."""
  dt = jnp.dtype(dtype)
  if width and name not in WIDTH_MODELS:
    raise ValueError(f"model_width applies to {', '.join(WIDTH_MODELS)}, not {name!r}")
  if name == "small_cnn":
    return SmallCNN(num_classes, width or 16, dt)
  if name == "resnet18":
    return ResNet18(num_classes, width or 64, dtype=dt)
  if name == "resnet50":
    return ResNet50(num_classes, width or 64, dtype=dt)
  if name in VGG_LAYERS:
    return VGG(num_classes, VGG_LAYERS[name], dt)
  if name == "densenet121":
    return DenseNet(num_classes, dtype=dt)
  if name == "wrn34_10":
    return WideResNet(num_classes, 34, 10, dt)
  if name == "linear":
    return Linear(num_classes, dt)
  raise ValueError(f"unknown model {name!r}")
