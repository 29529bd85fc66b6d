"""The robust attacks' and COIN's public functions refuse what they would compute wrongly (a
fraction where levels are meant, float images where pixel levels are, labels out of range, one
key for a batch), each with one line, like the crafters (tests/core/test_boundary.py)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sem_jax import core
from sem_jax.core.poisons import cuda, deepconfuse as DC, entf, gue
from sem_jax.core.thief import defenses as D
from sem_jax.errors import SemJaxError


class Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(4)(nn.relu(nn.Dense(8)(x.reshape(x.shape[0], -1))))


RNG = np.random.default_rng(0)
X8 = RNG.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
Y = np.arange(6) % 4
KEYS = core.per_sample(jax.random.key(1), np.arange(6))


def test_cuda_refuses_float_images_labels_out_of_range_and_odd_filters():
  f = cuda.filters(jax.random.key(0), 4)
  assert cuda.publish(X8, Y, f).dtype == np.uint8
  with pytest.raises(SemJaxError, match=r"cuda.publish takes uint8 pixel levels.*\* 255"):
    cuda.publish(X8 / 255.0, Y, f)
  for bad in (Y - 1, Y + 1):     # -1 would index the last filter; 4 has none
    with pytest.raises(SemJaxError, match=r"cuda.noise: labels must lie in \[0, 4\)"):
      cuda.noise(X8, bad, f)
  with pytest.raises(SemJaxError, match="labels must be integer"):
    cuda.publish(X8, Y.astype(np.float32), f)
  with pytest.raises(SemJaxError, match=r"class_filters must be \(num_classes, s, s\)"):
    cuda.publish(X8, Y, f[:, :2, :2])
  with pytest.raises(SemJaxError, match="add a batch axis"):
    cuda.publish(X8[0], Y[:1], f)
  with pytest.raises(SemJaxError, match="blur parameter must be in"):
    cuda.filters(jax.random.key(0), 4, blur=30.0)     # a level count for a fraction


def test_coin_refuses_uint8_images_one_key_and_a_bad_alpha():
  x = core.normalize(X8)
  assert D.coin(x, KEYS, 2.0).shape == x.shape
  with pytest.raises(SemJaxError, match="coin takes normalised float images"):
    D.coin(jnp.asarray(X8), KEYS, 2.0)
  with pytest.raises(SemJaxError, match="coin needs one key per image"):
    D.coin(x, jax.random.key(0), 2.0)
  for bad in (0.0, -1.0, float("nan"), 8.0):
    with pytest.raises(SemJaxError, match="coin: alpha is a displacement in pixels"):
      D.coin(x, KEYS, bad)


def test_entf_refuses_a_fraction_and_wrong_inputs():
  with pytest.raises(SemJaxError, match="EntFSpec: radius=0.031\d* is below one pixel level.*radius=8, not"):
    entf.EntFSpec(radius=8 / 255)
  with pytest.raises(SemJaxError, match="step_size=0.00157 levels is below"):
    entf.EntFSpec(step_size=0.4 / 255)
  with pytest.raises(SemJaxError, match="step_size=9 levels is larger than radius=8"):
    entf.EntFSpec(step_size=9.0)
  model = Net()
  state = core.init_state(model, core.paper_sgd(0.1), jax.random.key(0), (8, 8, 1))
  embed = entf.embedding_fn(model, state)
  x = core.normalize(X8)
  feats = embed(x)[0]
  cents = entf.centroids(feats, jnp.asarray(Y), 4)
  spec = entf.EntFSpec(steps=2, augment_pad=-1)
  d = entf.craft(spec, embed, x, jnp.asarray(Y), cents, KEYS)
  assert np.abs(np.asarray(d)).max() <= 8 / 255 + 1e-6
  with pytest.raises(SemJaxError, match="entf.craft takes normalised float images"):
    entf.craft(spec, embed, jnp.asarray(X8), jnp.asarray(Y), cents, KEYS)
  with pytest.raises(SemJaxError, match=r"entf.update: labels must lie in \[0, 4\)"):
    entf.update(spec, embed, x, jnp.asarray(Y + 1), cents, KEYS, 0, d)
  with pytest.raises(SemJaxError, match="entf.start needs one key per image"):
    entf.start(spec, x, jax.random.key(0))
  with pytest.raises(SemJaxError, match=r"entf.centroids: labels must lie in \[0, 4\)"):
    entf.centroids(feats, jnp.asarray(Y + 1), 4)
  with pytest.raises(SemJaxError, match=r"entf.centroids takes features \(B, D\)"):
    entf.centroids(x, jnp.asarray(Y), 4)


def test_gue_refuses_a_fraction_and_wrong_inputs():
  with pytest.raises(SemJaxError, match="GUESpec: radius=0.031\d* is below one pixel level.*radius=8, not"):
    gue.GUESpec(radius=8 / 255)
  with pytest.raises(SemJaxError, match="GUESpec: needs eta > 0"):
    gue.GUESpec(radius=8.0, inner_steps=0)
  with pytest.raises(SemJaxError, match="DCSpec: radius=0.031\d* is below one pixel level.*radius=8, not"):
    DC.DCSpec(8 / 255, 0.1)
  model, gen = Net(), DC.NoiseGenerator(channels=1)
  tx, gen_tx = optax.sgd(0.1), optax.adam(1e-3)
  cls = core.init_state(model, tx, jax.random.key(0), (8, 8, 1))
  gp = gen.init(jax.random.key(1), jnp.zeros((1, 8, 8, 1)))["params"]
  state = DC.DCState(cls, gp, gen_tx.init(gp))
  spec = gue.GUESpec(radius=8.0, inner_steps=1)
  x = core.normalize(X8)
  with pytest.raises(SemJaxError, match="gue.step takes normalised float images"):
    gue.step(model, tx, gen, gen_tx, spec, state, jnp.asarray(X8), jnp.asarray(Y))
  with pytest.raises(SemJaxError, match=r"gue.step: labels must lie in \[0, 4\)"):
    gue.step(model, tx, gen, gen_tx, spec, state, x, jnp.asarray(Y + 1))
