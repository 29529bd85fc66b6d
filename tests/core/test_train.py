"""Training steps: any flax model (with or without BatchNorm and a ``train`` argument), the
paper's SGD, one real step of the big networks."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sem_jax.core import train
from sem_jax.core.nets.models import create_model


class Plain(nn.Module):
  """A user's model: no BatchNorm, no ``train`` argument."""
  @nn.compact
  def __call__(self, x):
    return nn.Dense(3)(nn.relu(nn.Dense(8)(x.reshape(x.shape[0], -1))))


def test_a_model_without_batchnorm_or_train_argument_trains():
  model = Plain()
  tx = optax.sgd(0.5)
  state = train.init_state(model, tx, jax.random.key(0), (4, 4, 1))
  assert state.batch_stats == {}
  x = jax.random.uniform(jax.random.key(1), (6, 4, 4, 1), minval=-0.5, maxval=0.5)
  y = jnp.array([0, 1, 2, 0, 1, 2])
  step = jax.jit(lambda s: train.update(model, tx, s, x, y))
  losses = []
  for _ in range(40):
    state, m = step(state)
    losses.append(float(m["loss"]))
  assert losses[-1] < 0.5 * losses[0] and int(state.step) == 40
  logits = train.logits_fn(model, state)(x)
  np.testing.assert_allclose(logits, model.apply({"params": state.params}, x), rtol=1e-6)
  np.testing.assert_allclose(train.predict(model, state, x), logits, rtol=1e-6)


def test_one_update_is_the_hand_computed_sgd_step():
  """SGD with coupled weight decay and momentum (PyTorch semantics): the first step is
  p - lr (∇L + wd p); the lr decays x0.1 every ``decay_every`` steps."""
  model = Plain()
  tx = train.paper_sgd(learning_rate=0.2, momentum=0.9, weight_decay=0.01, decay_every=1,
                 decay_factor=0.5)
  state = train.init_state(model, tx, jax.random.key(3), (2, 2, 1))
  x = jax.random.uniform(jax.random.key(4), (5, 2, 2, 1), minval=-0.5, maxval=0.5)
  y = jnp.array([0, 1, 2, 1, 0])
  loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
      model.apply({"params": p}, x), y).mean()
  g = jax.grad(loss)(state.params)
  new, _ = train.update(model, tx, state, x, y)
  want = jax.tree.map(lambda p, gp: p - 0.2 * (gp + 0.01 * p), state.params, g)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new.params, want)
  # the second step runs at lr 0.1 with momentum 0.9 on the first step's velocity
  g2 = jax.grad(loss)(new.params)
  newer, _ = train.update(model, tx, new, x, y)
  v = jax.tree.map(lambda gp, p, g1, p1: 0.9 * (g1 + 0.01 * p1) + gp + 0.01 * p, g2, new.params,
                   g, state.params)
  want2 = jax.tree.map(lambda p, vv: p - 0.1 * vv, new.params, v)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), newer.params,
               want2)


@pytest.mark.slow
def test_resnet18_one_training_step_is_finite():
  m = create_model("resnet18", 10)
  tx = train.paper_sgd()
  st = jax.jit(lambda k: train.init_state(m, tx, k, (32, 32, 3)))(jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3), minval=-0.5, maxval=0.5)
  st2, metrics = jax.jit(lambda s: train.update(m, tx, s, x, jnp.arange(4)))(st)
  assert np.isfinite(float(metrics["loss"])) and int(st2.step) == 1
  assert not np.allclose(st2.batch_stats["BatchNorm_0"]["mean"], st.batch_stats["BatchNorm_0"]["mean"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "vgg11_bn", "wrn34_10"])
def test_big_victims_take_one_sgd_step(name):
  """One real update at batch 2: finite loss, parameters and BatchNorm statistics change."""
  model = create_model(name, 10)
  tx = train.paper_sgd()
  state = jax.jit(lambda k: train.init_state(model, tx, k, (32, 32, 3)))(jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3), minval=-0.5, maxval=0.5)
  new, m = jax.jit(lambda s, x, y: train.update(model, tx, s, x, y, dropout_key=jax.random.key(2))
                   )(state, x, jnp.array([1, 7]))
  assert np.isfinite(float(m["loss"])) and int(new.step) == 1
  changed = lambda a, b: jax.tree.leaves(jax.tree.map(
      lambda u, v: bool(np.any(np.asarray(u) != np.asarray(v))), a, b))
  assert all(changed(state.params, new.params))
  assert any(changed(state.batch_stats, new.batch_stats))
