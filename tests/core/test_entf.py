"""EntF's parts (core.poisons.entf): the penultimate features, the centroids, and crafting that
pushes features from their own centroid (push) or pulls them to another (pull)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax.core import train
from sem_jax.core.nets.models import create_model
from sem_jax.core.poisons import entf
from sem_jax.core.units import normalize


def _reference(width=8, classes=4, shape=(16, 16, 1)):
  model = create_model("small_cnn", classes, width)
  state = train.init_state(model, train.paper_sgd(0.1), jax.random.key(0), shape)
  return model, state


def test_the_features_are_the_input_of_the_last_dense_layer():
  """logits = features @ W + b of the model's last Dense: the features are its input."""
  model, state = _reference()
  x = jax.random.uniform(jax.random.key(1), (5, 16, 16, 1)) - 0.5
  feats, logits = entf.embedding_fn(model, state)(x)
  dense = [k for k in state.params if k.startswith("Dense")]
  head = state.params[sorted(dense, key=lambda k: int(k.split("_")[1]))[-1]]
  assert feats.shape[0] == 5 and feats.shape[1] == head["kernel"].shape[0]
  np.testing.assert_allclose(feats @ head["kernel"] + head["bias"], logits, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(logits, train.logits_fn(model, state)(x), rtol=1e-6)


def test_centroids_are_class_means():
  f = jnp.asarray(np.random.default_rng(0).normal(size=(9, 3)), jnp.float32)
  y = jnp.array([0, 1, 1, 2, 2, 2, 0, 1, 0])
  c = entf.centroids(f, y, 4)
  for k in range(3):
    np.testing.assert_allclose(c[k], np.asarray(f)[np.asarray(y) == k].mean(0), rtol=1e-5)
  assert (c[3] == 0).all()
  d = entf.distances(f, c)
  np.testing.assert_allclose(d[4, 2], np.mean((np.asarray(f[4]) - np.asarray(c[2])) ** 2),
                             rtol=1e-5)


@pytest.mark.parametrize("recipe", ["push", "pull"])
def test_crafting_moves_the_features_as_its_recipe_says_inside_the_budget(recipe):
  model, state = _reference()
  rng = np.random.default_rng(2)
  x_u8 = rng.integers(0, 256, (12, 16, 16, 1)).astype(np.uint8)
  y = jnp.asarray(np.arange(12) % 4)
  x = normalize(jnp.asarray(x_u8))
  embed = entf.embedding_fn(model, state)
  feats = embed(x)[0]
  cents = entf.centroids(feats, y, 4)
  spec = entf.EntFSpec(radius=8.0, steps=20, step_size=1.0, recipe=recipe, augment_pad=-1)
  keys = jax.random.split(jax.random.key(3), 12)
  delta = jax.jit(lambda x, y, c, k: entf.craft(spec, embed, x, y, c, k))(x, y, cents, keys)
  assert float(jnp.abs(delta).max()) <= 8 / 255 + 1e-6
  assert float((x + delta).min()) >= -0.5 - 1e-6 and float((x + delta).max()) <= 0.5 + 1e-6
  before, after = entf.distances(feats, cents), entf.distances(embed(x + delta)[0], cents)
  rows = jnp.arange(12)
  if recipe == "push":   # farther from the own centroid
    assert float((after[rows, y] - before[rows, y]).mean()) > 0
  else:                  # nearer to the nearest other centroid
    mask = jax.nn.one_hot(y, 4, dtype=bool)
    near = lambda d: jnp.where(mask, jnp.inf, d).min(1)
    assert float((near(after) - near(before)).mean()) < 0
  again = jax.jit(lambda x, y, c, k: entf.craft(spec, embed, x, y, c, k))(x, y, cents, keys)
  assert np.array_equal(np.asarray(delta), np.asarray(again))


def test_bad_specs_and_models_without_a_dense_layer_are_refused():
  with pytest.raises(ValueError, match="push or pull"):
    entf.EntFSpec(recipe="shove")
  with pytest.raises(ValueError, match="radius"):
    entf.EntFSpec(radius=0.0)
  import flax.linen as nn

  class ConvOnly(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Conv(4, (3, 3))(x).mean((1, 2))

  model = ConvOnly()
  state = train.init_state(model, train.paper_sgd(0.1), jax.random.key(0), (8, 8, 1))
  with pytest.raises(ValueError, match="calls no Dense layer"):
    entf.embedding_fn(model, state)(jnp.zeros((2, 8, 8, 1)))


def test_the_host_loop_of_jitted_steps_is_the_fori_loop():
  """On CPU the command calls start and a jitted update per step: the same δ as craft's
  fori_loop."""
  model, state = _reference()
  x = normalize(jnp.asarray(np.random.default_rng(4).integers(0, 256, (6, 16, 16, 1)),
                            jnp.uint8))
  y = jnp.arange(6) % 4
  embed = entf.embedding_fn(model, state)
  cents = entf.centroids(embed(x)[0], y, 4)
  keys = jax.random.split(jax.random.key(7), 6)
  for recipe in ("push", "pull"):
    spec = entf.EntFSpec(steps=4, step_size=1.0, recipe=recipe, augment_pad=2)
    rolled = jax.jit(lambda x, y, c, k: entf.craft(spec, embed, x, y, c, k))(x, y, cents, keys)
    one = jax.jit(lambda x, y, c, k, i, d: entf.update(spec, embed, x, y, c, k, i, d))
    d = jax.jit(lambda x, k: entf.start(spec, x, k))(x, keys)
    for i in range(spec.steps):
      d = one(x, y, cents, keys, i, d)
    np.testing.assert_allclose(np.asarray(d), np.asarray(rolled), atol=1e-6)
