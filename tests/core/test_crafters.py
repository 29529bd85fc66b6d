"""The crafters and CraftSpec: a spec computes the method it names at the radius it was given,
or refuses to be built; the public core functions agree with and without jit (chex.variants)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax import core
from sem_jax.core import keys as K
from sem_jax.core.crafting import noise as N
from sem_jax.errors import SemJaxError


def test_a_hand_built_spec_is_the_method_it_names_at_its_own_radius():
  sem = core.CraftSpec(method="sem", radius=16 / 255, adversary=core.pgd_attack(4))
  assert sem.radius_levels == 16 and sem.offset is N.uniform_offset and sem.descends
  rem = core.CraftSpec(method="rem", radius=8 / 255, adversary=core.pgd_attack(4))
  assert rem.offset is N.pgd_offset
  tap = core.CraftSpec(method="tap", radius=8 / 255, steps=3, step_size=0.5 / 255)
  assert tap.next_class_target and tap.offset is N.no_offset
  assert core.sem(radius=16) == core.sem(radius=16)   # frozen, comparable: a jit static arg
  assert core.sem(radius=16).radius_levels == 16 and core.em(radius=4).radius_levels == 4


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(method="sem", radius=8.0), "radius .* must be in \\(0, 1\\]"),     # levels, not fractions
    (dict(method="fancy", radius=0.03), "unknown method 'fancy'"),
    (dict(method="em", radius=0.03, adversary=core.pgd_attack(4)), "no adversarial offset"),
    (dict(method="sem", radius=0.03, steps=0), "steps and num_samples must be >= 1"),
    (dict(method="sem", radius=0.03, start="zero"), "start 'zero'"),
])
def test_an_inconsistent_spec_is_refused(kwargs, pattern):
  with pytest.raises(SemJaxError, match=pattern):
    core.CraftSpec(**kwargs)


def _linear_logits(x):
  w = jnp.linspace(-1.0, 1.0, x[0].size * 3).reshape(-1, 3)
  return x.reshape(x.shape[0], -1) @ w


class CoreVariantsTest(chex.TestCase):
  """Each public function gives the same result traced by jit and run op by op."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_craft_is_bounded_and_the_same_under_jit(self):
    spec = core.sem(radius=8, steps=3, step_size=2.0, samples=2, adv_radius=4)
    x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 1), minval=-0.5, maxval=0.5)
    y = jnp.arange(4) % 3
    keys = K.per_sample(jax.random.key(1), jnp.arange(4))
    delta = self.variant(lambda x, y, k: N.craft(spec, _linear_logits, x, y, k))(x, y, keys)
    ref = N.craft(spec, _linear_logits, x, y, keys)
    np.testing.assert_allclose(delta, ref, atol=1e-6)
    assert float(jnp.abs(delta).max()) <= 8 / 255 + 1e-7

  @chex.variants(with_jit=True, without_jit=True)
  def test_quantize_and_protect_round_trip_levels(self):
    delta = jnp.array([-9.4, -8.0, -0.6, 0.4, 7.6, 12.0]) / 255
    q = self.variant(lambda d: core.quantize(d, 8))(delta)
    np.testing.assert_array_equal(q, np.array([-8, -8, -1, 0, 8, 8], np.int8))
    assert q.dtype == jnp.int8
    x = jnp.array([0, 3, 100, 250, 251, 255], jnp.uint8)
    out = self.variant(lambda x, q: core.protect(x, q))(x, q)
    np.testing.assert_array_equal(out, np.clip(np.asarray(x, int) + np.asarray(q, int), 0, 255))

  @chex.variants(with_jit=True, without_jit=True)
  def test_augment_keeps_shape_and_levels(self):
    x = jax.random.uniform(jax.random.key(2), (3, 8, 8, 2), minval=-0.5, maxval=0.5)
    keys = K.per_sample(jax.random.key(3), jnp.arange(3))
    out = self.variant(lambda x, k: core.augment(x, k, 2))(x, keys)
    chex.assert_shape(out, x.shape)
    np.testing.assert_allclose(out, core.augment(x, keys, 2), atol=0)
    assert float(out.min()) >= -0.5 and float(out.max()) <= 0.5
