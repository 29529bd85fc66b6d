"""APBench's victims (lafeat/apbench nets/): parameter counts equal to its definitions, and
each trains two steps."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax.core import train
from sem_jax.core.nets.apbench import (kept_layers, parameter_count, patches, shifted_stack)
from sem_jax.core.nets.models import create_model

# sum(p.numel() for p in net.parameters()) of APBench's classes at 32x32x3 inputs, computed
# with torch 2.13 from lafeat/apbench nets/senet.py (SENet18), nets/mobilenetv2.py
# (MobileNetV2), nets/vit_small.py (Vit_cifar), nets/cait_small.py (Cait_cifar).
APBENCH_COUNTS = {
    ("se_resnet18", 10): 11260354, ("se_resnet18", 100): 11306524,
    ("mobilenet_v2", 10): 2296922, ("mobilenet_v2", 100): 2412212,
    ("vit", 10): 9622512, ("vit", 100): 9668682,
    ("cait", 10): 8488522, ("cait", 100): 8534692,
}


@pytest.mark.parametrize("name,classes", sorted(APBENCH_COUNTS))
def test_parameter_counts_equal_apbenchs(name, classes):
  net = create_model(name, classes)
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  assert parameter_count(shapes["params"]) == APBENCH_COUNTS[(name, classes)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["se_resnet18", "mobilenet_v2", "vit", "cait"])
def test_each_victim_trains_two_steps(name):
  net = create_model(name, 10)
  tx = train.adam(1e-3) if name in ("vit", "cait") else train.paper_sgd(0.01)
  state = jax.jit(lambda k: train.init_state(net, tx, k, (32, 32, 1)))(jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (4, 32, 32, 1)) - 0.5
  y = jnp.array([0, 1, 2, 3])
  step = jax.jit(lambda s, k: train.update(net, tx, s, x, y, dropout_key=k))
  before = state.params
  for i in range(2):
    state, m = step(state, jax.random.key(10 + i))
    assert np.isfinite(float(m["loss"]))
  assert int(state.step) == 2
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), before, state.params)
  assert max(jax.tree.leaves(moved)) > 0
  assert jax.eval_shape(lambda s: train.predict(net, s, x), state).shape == (4, 10)


def test_patch_order_and_shifts_follow_the_einops_definitions():
  x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
  p = patches(x, 2)
  assert p.shape == (2, 4, 12)
  # patch (0, 1) of image 1: rows 0..1, columns 2..3, flattened (row, column, channel)
  np.testing.assert_array_equal(p[1, 1], np.asarray(x[1, 0:2, 2:4]).reshape(-1))
  s = shifted_stack(x)
  assert s.shape == (2, 4, 4, 15)
  np.testing.assert_array_equal(s[:, :, 1:, 3:6], x[:, :, :-1])   # shifted right
  np.testing.assert_array_equal(s[:, :, 0, 3:6], 0)
  np.testing.assert_array_equal(s[:, 1:, :, 9:12], x[:, :-1])     # shifted down


def test_cait_layer_dropout_keeps_at_least_one_layer():
  masks = np.stack([np.asarray(kept_layers(jax.random.key(i), 3, 0.9)) for i in range(200)])
  assert masks.sum(axis=1).min() == 1 and set(np.unique(masks)) == {0.0, 1.0}
  assert 0.1 < masks.mean() < 0.6      # dropped at 0.9, rescued when all would go
