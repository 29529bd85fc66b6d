"""APBench's other CIFAR victims (lafeat/apbench, ``nets/``), as it defines them: SE-ResNet-18,
MobileNetV2, a ViT for small datasets and CaiT. Input: normalised NHWC images, any channels.

Layers are PyTorch's: BatchNorm as in [`sem_jax.core.nets.models`][sem_jax.core.nets.models] (momentum 0.1, eps 1e-5),
LayerNorm eps 1e-5, GELU exact (erf), dropout only with ``train=True``. The ``"pytorch"``
initialisation gives every conv and linear layer PyTorch's default U(±1/√fan_in), the
transformers' position embeddings and class tokens N(0, 1) (``torch.randn``). The parameter
counts equal APBench's definitions (tests/core/test_apbench_nets.py).
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sem_jax.core.nets.layers import _bn, _conv, _dense, torch_uniform


def _ln():
  return nn.LayerNorm(epsilon=1e-5)


class SEPreActBlock(nn.Module):
  """APBench's SENet ``PreActBlock``: BN-ReLU, a 3x3 (strided) conv, BN-ReLU, a 3x3 conv, then
  squeeze-and-excitation (global mean, 1x1 conv to planes/16 with bias, ReLU, 1x1 conv back,
  sigmoid, channel-wise scale) plus the shortcut (a 1x1 conv of the activated input when the
  shape changes, else the input). No activation after the sum."""
  planes: int
  strides: int = 1
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x, train: bool):
    conv = functools.partial(_conv, init=self.init_scheme, dtype=self.dtype)
    out = nn.relu(_bn(train, self.dtype)()(x))
    if self.strides != 1 or x.shape[-1] != self.planes:
      shortcut = conv(out, self.planes, 1, strides=self.strides)
    else:
      shortcut = x
    out = conv(out, self.planes, 3, strides=self.strides, padding=1)
    out = conv(nn.relu(_bn(train, self.dtype)()(out)), self.planes, 3, padding=1)
    w = jnp.mean(out, axis=(1, 2), keepdims=True)
    w = nn.relu(conv(w, self.planes // 16, 1, bias=True))
    w = nn.sigmoid(conv(w, self.planes, 1, bias=True))
    return out * w + shortcut


class SEResNet18(nn.Module):
  """APBench's ``SENet18``: 3x3 stem of 64, BN, ReLU, stages (64, 128, 256, 512) x 2
  [`SEPreActBlock`][SEPreActBlock] (strides 1, 2, 2, 2), global average, linear."""
  num_classes: int
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  train_flag = "train"   # the argument that switches training (core.mode_switch)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _conv(x.astype(self.dtype), 64, 3, self.init_scheme, padding=1, dtype=self.dtype)
    x = nn.relu(_bn(train, self.dtype)()(x))
    for i, planes in enumerate((64, 128, 256, 512)):
      for j in range(2):
        x = SEPreActBlock(planes, 2 if i and not j else 1, self.dtype, self.init_scheme)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return _dense(x, self.num_classes, self.init_scheme, self.dtype).astype(jnp.float32)


# (expansion, out channels, blocks, first stride): APBench's CIFAR MobileNetV2 (strides 1 at
# the stem and the second stage)
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
  """Expand (1x1, BN, ReLU), depthwise 3x3 (strided, BN, ReLU), project (1x1, BN); at stride 1
  the input is added (through a 1x1 conv + BN when the channels differ)."""
  expansion: int
  out: int
  strides: int
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x, train: bool):
    norm = _bn(train, self.dtype)
    conv = functools.partial(_conv, init=self.init_scheme, dtype=self.dtype)
    planes = self.expansion * x.shape[-1]
    y = nn.relu(norm()(conv(x, planes, 1, padding=0)))
    kw = {"kernel_init": torch_uniform()} if self.init_scheme == "pytorch" else {}
    y = nn.Conv(planes, (3, 3), (self.strides, self.strides), padding=1, use_bias=False,
                feature_group_count=planes, dtype=self.dtype, **kw)(y)
    y = norm()(conv(nn.relu(norm()(y)), self.out, 1, padding=0))
    if self.strides != 1:
      return y
    if x.shape[-1] != self.out:
      x = norm()(conv(x, self.out, 1, padding=0))
    return y + x


class MobileNetV2(nn.Module):
  """APBench's CIFAR ``MobileNetV2``: 3x3 stem of 32 (stride 1), BN, ReLU,
  `MOBILENET_V2_STAGES` of [`InvertedResidual`][InvertedResidual], 1x1 conv to 1280, BN, ReLU,
  global average, linear."""
  num_classes: int
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  train_flag = "train"   # the argument that switches training (core.mode_switch)

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = functools.partial(_conv, init=self.init_scheme, dtype=self.dtype)
    x = nn.relu(_bn(train, self.dtype)()(conv(x.astype(self.dtype), 32, 3, padding=1)))
    for expansion, out, blocks, stride in MOBILENET_V2_STAGES:
      for j in range(blocks):
        x = InvertedResidual(expansion, out, stride if j == 0 else 1, self.dtype,
                             self.init_scheme)(x, train)
    x = nn.relu(_bn(train, self.dtype)()(conv(x, 1280, 1, padding=0)))
    x = jnp.mean(x, axis=(1, 2))
    return _dense(x, self.num_classes, self.init_scheme, self.dtype).astype(jnp.float32)


# ----------------------------------------------------------------------------- transformers
def _randn(key, shape, dtype=jnp.float32):
  return jax.random.normal(key, shape, dtype)


def patches(x: jax.Array, size: int) -> jax.Array:
  """(B, H, W, C) -> (B, (H/size)(W/size), size·size·C): row-major patches, each flattened in
  (row, column, channel) order (einops ``b c (h p1) (w p2) -> b (h w) (p1 p2 c)``)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // size, size, w // size, size, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // size) * (w // size), size * size * c)


def shifted_stack(x: jax.Array) -> jax.Array:
  """Shifted patch tokenisation's input: x and its four one-pixel shifts (right, left, down,
  up; zero filled), stacked on the channel axis: (B, H, W, 5C)."""
  right = jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]
  left = jnp.pad(x, ((0, 0), (0, 0), (0, 1), (0, 0)))[:, :, 1:]
  down = jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]
  up = jnp.pad(x, ((0, 0), (0, 1), (0, 0), (0, 0)))[:, 1:]
  return jnp.concatenate([x, right, left, down, up], axis=-1)


def _heads(t, h):
  b, n, d = t.shape
  return t.reshape(b, n, h, d // h).transpose(0, 2, 1, 3)


def _merge(t):
  b, h, n, d = t.shape
  return t.transpose(0, 2, 1, 3).reshape(b, n, h * d)


class FeedForward(nn.Module):
  hidden: int
  dropout: float
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x, train: bool):
    d = x.shape[-1]
    y = nn.gelu(_dense(x, self.hidden, self.init_scheme), approximate=False)
    y = nn.Dropout(self.dropout, deterministic=not train)(y)
    y = _dense(y, d, self.init_scheme)
    return nn.Dropout(self.dropout, deterministic=not train)(y)


class LocalitySelfAttention(nn.Module):
  """ViT-for-small-datasets' LSA: multi-head attention with a learned temperature
  (exp(τ), τ initialised to log(1/√dim_head)) and each token's attention to itself masked."""
  heads: int
  dim_head: int
  dropout: float
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x, train: bool):
    inner = self.heads * self.dim_head
    tau = self.param("temperature", lambda k: jnp.log(jnp.float32(self.dim_head ** -0.5)))
    q, k, v = jnp.split(_dense(x, 3 * inner, self.init_scheme, bias=False), 3, axis=-1)
    q, k, v = (_heads(t, self.heads) for t in (q, k, v))
    dots = jnp.einsum("bhid,bhjd->bhij", q, k) * jnp.exp(tau)
    n = x.shape[1]
    dots = jnp.where(jnp.eye(n, dtype=bool), -jnp.finfo(dots.dtype).max, dots)
    out = _merge(jnp.einsum("bhij,bhjd->bhid", nn.softmax(dots, axis=-1), v))
    out = _dense(out, x.shape[-1], self.init_scheme)
    return nn.Dropout(self.dropout, deterministic=not train)(out)


class ViT(nn.Module):
  """APBench's ``Vit_cifar`` (ViT for small datasets): shifted patch tokens of 4x4 patches
  (LayerNorm, linear to 512), a class token, learned positions, embedding dropout 0.1, six
  pre-norm layers of LSA (8 heads of 64) and a GELU MLP of 512 (dropout 0.1), class-token
  pooling, LayerNorm, linear."""
  num_classes: int
  patch: int = 4
  dim: int = 512
  depth: int = 6
  heads: int = 8
  dim_head: int = 64
  mlp: int = 512
  dropout: float = 0.1
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  train_flag = "train"   # the argument that switches training (core.mode_switch)

  @nn.compact
  def __call__(self, x, train: bool = False):
    t = patches(shifted_stack(x.astype(jnp.float32)), self.patch)
    t = _dense(_ln()(t), self.dim, self.init_scheme)
    b, n, _ = t.shape
    cls = self.param("cls_token", _randn, (1, 1, self.dim))
    pos = self.param("pos_embedding", _randn, (1, n + 1, self.dim))
    t = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.dim)), t], axis=1) + pos
    t = nn.Dropout(self.dropout, deterministic=not train)(t)
    for _ in range(self.depth):
      t = t + LocalitySelfAttention(self.heads, self.dim_head, self.dropout,
                                    self.init_scheme)(_ln()(t), train)
      t = t + FeedForward(self.mlp, self.dropout, self.init_scheme)(_ln()(t), train)
    return _dense(_ln()(t[:, 0]), self.num_classes, self.init_scheme)


class TalkingHeadsAttention(nn.Module):
  """CaiT's attention: queries from x, keys and values from x and the context, the heads
  mixed by learned (heads, heads) matrices before and after the softmax (talking heads)."""
  heads: int
  dim_head: int
  dropout: float
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x, context, train: bool):
    inner = self.heads * self.dim_head
    ctx = x if context is None else jnp.concatenate([x, context], axis=1)
    q = _heads(_dense(x, inner, self.init_scheme, bias=False), self.heads)
    k, v = (_heads(t, self.heads) for t in
            jnp.split(_dense(ctx, 2 * inner, self.init_scheme, bias=False), 2, axis=-1))
    pre = self.param("mix_heads_pre_attn", _randn, (self.heads, self.heads))
    post = self.param("mix_heads_post_attn", _randn, (self.heads, self.heads))
    dots = jnp.einsum("bhid,bhjd->bhij", q, k) * self.dim_head ** -0.5
    attn = nn.softmax(jnp.einsum("bhij,hg->bgij", dots, pre), axis=-1)
    attn = jnp.einsum("bhij,hg->bgij", attn, post)
    out = _dense(_merge(jnp.einsum("bhij,bhjd->bhid", attn, v)), x.shape[-1], self.init_scheme)
    return nn.Dropout(self.dropout, deterministic=not train)(out)


def kept_layers(key: jax.Array, n: int, drop: float) -> jax.Array:
  """CaiT's layer dropout: each of ``n`` layers dropped with probability ``drop``, one of
  them (uniform) kept when every layer would be dropped. Returns a (n,) float 0/1 mask."""
  k_drop, k_keep = jax.random.split(key)
  keep = jax.random.uniform(k_drop, (n,)) >= drop
  rescue = jax.nn.one_hot(jax.random.randint(k_keep, (), 0, n), n) > 0
  return jnp.where(jnp.any(keep), keep, rescue).astype(jnp.float32)


class CaiTTransformer(nn.Module):
  """Layers of LayerScale(pre-norm talking-heads attention) and LayerScale(pre-norm MLP),
  LayerScale initialised to 0.1 (depth <= 18), layers dropped at ``layer_dropout`` in
  training."""
  depth: int
  heads: int
  dim_head: int
  mlp: int
  dropout: float
  layer_dropout: float
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x, context, train: bool):
    d = x.shape[-1]
    keep = (kept_layers(self.make_rng("dropout"), self.depth, self.layer_dropout)
            if train and self.layer_dropout else jnp.ones((self.depth,)))
    for i in range(self.depth):
      s_attn = self.param(f"scale_attn_{i}", nn.initializers.constant(0.1), (1, 1, d))
      s_ff = self.param(f"scale_ff_{i}", nn.initializers.constant(0.1), (1, 1, d))
      a = TalkingHeadsAttention(self.heads, self.dim_head, self.dropout,
                                self.init_scheme)(_ln()(x), context, train)
      x = x + keep[i] * a * s_attn
      f = FeedForward(self.mlp, self.dropout, self.init_scheme)(_ln()(x), train)
      x = x + keep[i] * f * s_ff
    return x


class CaiT(nn.Module):
  """APBench's ``Cait_cifar``: 4x4 patches linearly embedded to 512 plus learned positions
  (embedding dropout 0.1), six patch layers, then two class-attention layers in which a class
  token attends to itself and the patch tokens (6 heads of 64, MLP 256, dropout 0.1, layer
  dropout 0.05), LayerNorm, linear on the class token."""
  num_classes: int
  patch: int = 4
  dim: int = 512
  depth: int = 6
  cls_depth: int = 2
  heads: int = 6
  dim_head: int = 64
  mlp: int = 256
  dropout: float = 0.1
  layer_dropout: float = 0.05
  dtype: Any = jnp.float32
  init_scheme: str = "pytorch"

  train_flag = "train"   # the argument that switches training (core.mode_switch)

  @nn.compact
  def __call__(self, x, train: bool = False):
    t = _dense(patches(x.astype(jnp.float32), self.patch), self.dim, self.init_scheme)
    b, n, _ = t.shape
    t = t + self.param("pos_embedding", _randn, (1, n, self.dim))
    t = nn.Dropout(self.dropout, deterministic=not train)(t)
    layer = functools.partial(CaiTTransformer, heads=self.heads, dim_head=self.dim_head,
                              mlp=self.mlp, dropout=self.dropout,
                              layer_dropout=self.layer_dropout, init_scheme=self.init_scheme)
    t = layer(self.depth)(t, None, train)
    cls = jnp.broadcast_to(self.param("cls_token", _randn, (1, 1, self.dim)), (b, 1, self.dim))
    cls = layer(self.cls_depth)(cls, t, train)
    return _dense(_ln()(cls[:, 0]), self.num_classes, self.init_scheme)


def parameter_count(params) -> int:
  """Number of scalars in a parameter pytree (BatchNorm running statistics excluded)."""
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))


APBENCH_NETS = {"se_resnet18": SEResNet18, "mobilenet_v2": MobileNetV2, "vit": ViT, "cait": CaiT}
