"""Simple networks that detect unlearnable examples (UDP: Zhu et al., "Detection and defense of
unlearnable examples", AAAI 2024).

UDP's observation: poisons are shortcuts, so a *simple* network (a linear model, a two-layer
MLP) fits a poisoned training set with its labels as well as or better than clean data, and
what it learns there fails on clean test images. [`fit`][fit] trains such a network full-batch
on flattened images in [-0.5, 0.5] and returns its training and clean test accuracy;
[`split_detector`][split_detector] trains the same kind of network, on pixels and the magnitude of their
high-pass residual, to tell published images from clean ones (published from one half of the
indices, clean from the other half, tested the other way round, so no image is seen in both
forms).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

DETECTORS = ("linear", "mlp")
HIDDEN = 128


def _init(key, d_in: int, d_out: int, kind: str):
  """Parameters of a linear model or a two-layer ReLU MLP (PyTorch's default init)."""
  dims = (d_in, d_out) if kind == "linear" else (d_in, HIDDEN, d_out)
  params = []
  for k, (a, b) in zip(jax.random.split(key, len(dims) - 1), zip(dims[:-1], dims[1:])):
    kw, kb = jax.random.split(k)
    bound = 1.0 / np.sqrt(a)
    params.append((jax.random.uniform(kw, (a, b), minval=-bound, maxval=bound),
                   jax.random.uniform(kb, (b,), minval=-bound, maxval=bound)))
  return params


def logits(params, x):
  """(N, D) flattened images -> (N, classes)."""
  for i, (w, b) in enumerate(params):
    x = x @ w + b
    if i < len(params) - 1:
      x = jax.nn.relu(x)
  return x


@functools.partial(jax.jit, static_argnames=("classes", "kind", "steps"))
def train(key, x, y, classes: int, kind: str, steps: int = 300, lr: float = 1e-2):
  """Full-batch Adam on mean cross-entropy for ``steps`` steps; returns the parameters."""
  params = _init(key, x.shape[1], classes, kind)
  tx = optax.adam(lr)

  def loss(p):
    return optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()

  def step(_, carry):
    p, s = carry
    g = jax.grad(loss)(p)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  params, _ = jax.lax.fori_loop(0, steps, step, (params, tx.init(params)))
  return params


def accuracy(params, x, y) -> float:
  return float(jnp.mean(jnp.argmax(logits(params, x), -1) == y))


def flat(images: np.ndarray) -> jax.Array:
  """uint8 (N, H, W, C) -> float32 (N, HWC) in [-0.5, 0.5]."""
  return jnp.asarray(images.reshape(len(images), -1), jnp.float32) / 255.0 - 0.5


def detector_features(images: np.ndarray) -> jax.Array:
  """Flattened pixels beside the magnitude of each pixel's high-pass residual
  |x - 3x3 mean of x| (edge padded), both in [-0.5, 0.5] units: additive noise, zero-mean
  and invisible to a linear model of the pixels alone, raises the residual's magnitude."""
  x = jnp.asarray(images, jnp.float32) / 255.0
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
  h, w = x.shape[1:3]
  mean = sum(p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
  resid = jnp.abs(x - mean)
  return jnp.concatenate([x.reshape(len(x), -1) - 0.5, resid.reshape(len(x), -1)], axis=1)


def fit(key, images: np.ndarray, labels: np.ndarray, classes: int, kind: str,
        test_images: np.ndarray, test_labels: np.ndarray, steps: int = 300) -> tuple:
  """(training accuracy, clean test accuracy) of a simple network of ``kind`` trained on
  (images, labels)."""
  x, y = flat(images), jnp.asarray(labels, jnp.int32)
  params = train(key, x, y, classes, kind, steps)
  return accuracy(params, x, y), accuracy(params, flat(test_images),
                                          jnp.asarray(test_labels, jnp.int32))


def split_detector(key, published: np.ndarray, clean: np.ndarray, kind: str,
                   steps: int = 300) -> float:
  """Held-out accuracy of a published-vs-clean classifier (0.5: indistinguishable).

  ``published[i]`` and ``clean[i]`` are the same image with and without noise. A seeded
  half A of the indices gives published examples and the other half B clean ones for
  training; the test set is published[B] and clean[A]. Inputs: [`detector_features`][detector_features]."""
  n = len(published)
  k_split, k_train = jax.random.split(key)
  perm = np.asarray(jax.random.permutation(k_split, n))
  a, b = perm[: n // 2], perm[n // 2:]
  f = detector_features
  x_tr = jnp.concatenate([f(published[a]), f(clean[b])])
  y_tr = jnp.concatenate([jnp.ones(len(a), jnp.int32), jnp.zeros(len(b), jnp.int32)])
  x_te = jnp.concatenate([f(published[b]), f(clean[a])])
  y_te = jnp.concatenate([jnp.ones(len(b), jnp.int32), jnp.zeros(len(a), jnp.int32)])
  return accuracy(train(k_train, x_tr, y_tr, 2, kind, steps), x_te, y_te)
