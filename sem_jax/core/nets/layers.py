"""The layers every network here is built from, initialised as PyTorch initialises them
([`sem_jax.core.nets.models`][sem_jax.core.nets.models] explains the schemes)."""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def torch_uniform(fan_in: int = 0) -> Callable:
  """Initializer U(±1/√fan_in); fan_in 0: product of all but the last axis of the shape
  (a kernel's fan-in: kh·kw·in for convs, in for dense layers)."""
  def init(key, shape, dtype=jnp.float32):
    bound = 1.0 / np.sqrt(fan_in or int(np.prod(shape[:-1])))
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def _bn(train: bool, dtype: Any):
  return functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                           epsilon=1e-5, dtype=dtype)


def _conv(x, features: int, kernel: int, init: str, strides: int = 1, padding: Any = "SAME",
          bias: bool = False, dtype: Any = jnp.float32, kernel_init: Callable | None = None,
          bias_init: Callable | None = None):
  """A kernel x kernel nn.Conv applied to x, initialised by the ``init`` scheme
  (``kernel_init`` / ``bias_init``: the model's own PyTorch-scheme initialisers)."""
  kw = {}
  if init == "pytorch":
    fan_in = x.shape[-1] * kernel * kernel
    kw = dict(kernel_init=kernel_init or torch_uniform(),
              bias_init=bias_init or torch_uniform(fan_in))
  return nn.Conv(features, (kernel, kernel), (strides, strides), padding=padding, use_bias=bias,
                 dtype=dtype, **kw)(x)


def _dense(x, features: int, init: str, dtype: Any = jnp.float32,
           bias_init: Callable | None = None, bias: bool = True):
  """nn.Dense applied to x (without a bias: kernel only); PyTorch scheme: kernel and bias
  U(±1/√in) unless bias_init."""
  kw = {}
  if init == "pytorch":
    kw = dict(kernel_init=torch_uniform())
    if bias:
      kw["bias_init"] = bias_init or torch_uniform(x.shape[-1])
  return nn.Dense(features, use_bias=bias, dtype=dtype, **kw)(x)
