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

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    x = nn.Conv(self.width, (3, 3), padding=1, use_bias=False, dtype=self.dtype)(x)
    x = nn.relu(_bn(train, self.dtype)()(x))
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = BasicBlock(self.width * 2**i, strides, self.dtype)(x, train)
    x = jnp.mean(x, axis=(1, 2))
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
  """Build a model by config name; width 0 means the model's default."""
  dt = jnp.dtype(dtype)
  if name == "small_cnn":
    return SmallCNN(num_classes, width or 16, dt)
  if name == "resnet18":
    return ResNet18(num_classes, width or 64, dtype=dt)
  if name == "linear":
    return Linear(num_classes, dt)
  raise ValueError(f"unknown model {name!r}")
