"""Entangled features (EntF; Wen et al., "Is Adversarial Training Really a Silver Bullet for
Mitigating Data Poisoning?", ICLR 2023; read from WenRuiUSTC/EntF, ``village/shop/
forgemaster_push.py`` / ``_pull.py`` and ``forgemaster_base.py``; docs/method.md).

Crafted against a fixed, adversarially trained reference model: the features f(x) are the
model's penultimate features (the input of its last Dense layer, [`embedding_fn`][embedding_fn]),
and each class's centroid c_k is the mean feature of its clean training images (eval mode).
δ starts at N(0, 1)·ρu clipped to ±ρu, then takes ``steps`` signed steps, each on a fresh
flip + pad-and-crop view of x + δ, projected to ±ρu and to the valid range 0 <= x + δ <= 1:

- ``push``: ascend ||f(x + δ) − c_y||² (the mean over features), pushing each image away
  from its own class's centroid;
- ``pull``: descend ||f(x + δ) − c_t||², c_t the centroid of another class nearest to the
  current features.

The release's defaults: ρu 8/255, 300 steps of 0.05 ρu, a reference trained with PGD-AT at
4/255. Radii and steps here are pixel levels; images are normalised (``x / 255 - 0.5``).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from sem_jax.core import checks, train
from sem_jax.core.augment import train_view
from sem_jax.core.units import fraction
from sem_jax.errors import SemJaxError

RECIPES = ("push", "pull")


@dataclasses.dataclass(frozen=True)
class EntFSpec:
  """EntF's crafting (static; radii in pixel levels)."""
  radius: float = 8.0          # ρu, L∞ levels [8]
  steps: int = 300             # signed steps [300, the release's attackiter]
  step_size: float = 0.4       # levels [0.05 ρu, the release's tau]
  recipe: str = "push"         # push | pull
  augment_pad: int = 4         # each step's flip + pad-and-crop view; < 0: none

  def __post_init__(self):
    if self.recipe not in RECIPES:
      raise SemJaxError(f"EntFSpec: unknown recipe {self.recipe!r}; choose push or pull")
    checks.levels("radius", self.radius, fn="EntFSpec")
    if self.radius > 255:
      raise SemJaxError(f"EntFSpec: radius={self.radius:g} levels is above 255")
    if self.steps < 1 or self.step_size <= 0:
      raise SemJaxError(f"EntFSpec: needs steps >= 1 and step_size > 0 levels, got "
                        f"steps={self.steps}, step_size={self.step_size:g}")
    checks.travel("EntFSpec", self.steps, self.step_size, self.radius)


def embedding_fn(model: nn.Module, state: train.TrainState, mode=None) -> Callable:
  """x -> (features (B, D), logits): eval mode, the features being the input of the model's
  last Dense call (its penultimate layer, flattened). Raises where the model calls no Dense."""
  logits_of = train.logits_fn(model, state, mode)

  def f(x):
    seen = []

    def grab(next_fun, args, kwargs, context):
      if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
        seen.append(args[0])
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(grab):
      logits = logits_of(x)
    if not seen:
      raise ValueError(f"{type(model).__name__} calls no Dense layer: it has no penultimate "
                       "features for EntF")
    feats = seen[-1]
    return feats.reshape(feats.shape[0], -1), logits

  return f


def centroids(features: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  """(num_classes, D) the mean feature of each class (0 for a class without images);
  ``labels`` (B,) integers in [0, num_classes)."""
  if getattr(features, "ndim", 0) != 2:
    raise SemJaxError(f"entf.centroids takes features (B, D), got shape "
                      f"{tuple(getattr(features, 'shape', ()))}: use embedding_fn's first output")
  checks.labels(labels, features.shape[0], num_classes, "entf.centroids")
  onehot = jax.nn.one_hot(labels, num_classes, dtype=features.dtype)
  counts = onehot.sum(0)
  return (onehot.T @ features) / jnp.maximum(counts, 1)[:, None]


def distances(feats: jax.Array, cents: jax.Array) -> jax.Array:
  """(B, K) mean squared distance of each feature vector to each centroid (the release's MSE)."""
  return jnp.mean((feats[:, None, :] - cents[None, :, :]) ** 2, axis=-1)


def targets(spec: EntFSpec, feats: jax.Array, y: jax.Array, cents: jax.Array) -> jax.Array:
  """The centroid each image's features are measured against: its own class (push), or the
  nearest other class (pull)."""
  if spec.recipe == "push":
    return y
  d = distances(feats, cents)
  d = jnp.where(jax.nn.one_hot(y, cents.shape[0], dtype=bool), jnp.inf, d)
  return jnp.argmin(d, axis=1)


def loss(spec: EntFSpec, feats: jax.Array, t: jax.Array, cents: jax.Array) -> jax.Array:
  """(B,) what δ descends: −MSE to the own centroid (push), MSE to the target (pull)."""
  d = jnp.mean((feats - cents[t]) ** 2, axis=-1)
  return -d if spec.recipe == "push" else d


def _inputs(fn: str, x, y, cents, keys):
  """Refuse what the crafting would compute wrongly: images not normalised, labels not one
  class index of ``cents`` per image, keys not one per image; returns typed keys."""
  checks.normalised_images(x, fn)
  if y is not None:
    checks.labels(y, x.shape[0], cents.shape[0], fn)
  return checks.sample_keys(keys, x.shape[0], fn)


def start(spec: EntFSpec, x: jax.Array, keys: jax.Array) -> jax.Array:
  """δ's start: N(0, 1)·ρu per sample (keyed), projected ([`project`][project])."""
  keys = _inputs("entf.start", x, None, None, keys)
  eps = fraction(spec.radius)
  d = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), x.shape[1:]))(keys) * eps
  return project(spec, x, d)


def project(spec: EntFSpec, x: jax.Array, d: jax.Array) -> jax.Array:
  """δ clipped to ±ρu and to the valid range -0.5 <= x + δ <= 0.5."""
  eps = fraction(spec.radius)
  return jnp.clip(jnp.clip(d, -eps, eps), -0.5 - x, 0.5 - x)


def update(spec: EntFSpec, embed: Callable, x: jax.Array, y: jax.Array, cents: jax.Array,
           keys: jax.Array, i, d: jax.Array) -> jax.Array:
  """Step ``i`` (0-based): one signed step of ``step_size`` on a fresh view of x + δ, then
  the projection."""
  keys = _inputs("entf.update", x, y, cents, keys)
  views = jax.vmap(lambda k: jax.random.fold_in(k, i + 1))(keys)
  fixed = targets(spec, embed(x)[0], y, cents) if spec.recipe == "push" else None

  def total(d):
    feats = embed(train_view(x + d, views, spec.augment_pad, 0))[0]
    t = fixed if fixed is not None else jax.lax.stop_gradient(targets(spec, feats, y, cents))
    return loss(spec, feats, t, cents).sum()

  return project(spec, x, d - fraction(spec.step_size) * jnp.sign(jax.grad(total)(d)))


def craft(spec: EntFSpec, embed: Callable, x: jax.Array, y: jax.Array, cents: jax.Array,
          keys: jax.Array) -> jax.Array:
  """δ (fractions of [0, 1], the shape of ``x``) for normalised images ``x`` of labels ``y``;
  ``embed`` an [`embedding_fn`][embedding_fn], ``cents`` the reference's class centroids, ``keys``
  one per sample (the start and each step's view). All ``steps`` in one ``fori_loop``; on CPU
  call [`start`][start] and a jitted [`update`][update] per step instead (XLA:CPU runs
  convolutions inside a while loop several times slower): the same δ."""
  keys = _inputs("entf.craft", x, y, cents, keys)
  return jax.lax.fori_loop(0, spec.steps,
                           lambda i, d: update(spec, embed, x, y, cents, keys, i, d),
                           start(spec, x, keys))
