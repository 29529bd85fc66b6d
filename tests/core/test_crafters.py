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
  sem = core.CraftSpec(method="sem", radius=16, adversary=core.AttackSpec(4))
  assert sem.int8_bound == 16 and sem.offset is N.uniform_offset and sem.descends
  rem = core.CraftSpec(method="rem", radius=8, adversary=core.AttackSpec(4))
  assert rem.offset is N.pgd_offset
  tap = core.CraftSpec(method="tap", radius=8, steps=3, step_size=0.5)
  assert tap.next_class_target and tap.offset is N.no_offset
  assert core.sem(radius=16).int8_bound == 16 and core.em(radius=4).int8_bound == 4
  assert core.sem(radius=8).radius_frac == 8 / 255 and core.sem(radius=8).step_frac == 1.6 / 255


def test_specs_are_equal_exactly_when_they_compute_the_same():
  """Specs are jit static arguments: equal (and equally hashed) for the same fields, unequal
  when any field that changes the computation differs."""
  a, b = core.sem(radius=16), core.CraftSpec(method="sem", radius=16.0, steps=10, step_size=1.6,
                                             num_samples=5, adversary=core.AttackSpec(4, 10, 0.8))
  assert a == b and hash(a) == hash(b)
  others = [core.sem(radius=8), core.rem(radius=16), core.sem(radius=16, adv_radius=2),
            core.sem(radius=16, samples=3), core.sem(radius=16, augment_pad=-1),
            core.sem(radius=16, loss=lambda logits, y: -N.attacks.ce(logits, y))]
  assert all(a != o for o in others)
  assert len({a, *others}) == len(others) + 1


@pytest.mark.slow
def test_a_hand_built_sem_spec_takes_sems_defaults_not_ems():
  """CraftSpec(method="sem") without an adversary is SEM with the paper's adversary (ρa 4,
  10 steps of 0.8) and J = 5, and its gradient estimate differs from EM's."""
  sem = core.CraftSpec(method="sem", radius=8, steps=2)
  assert sem.adversary == core.AttackSpec(4, 10, 0.8) and sem.num_samples == 5
  assert sem.offset is N.uniform_offset
  assert core.CraftSpec(method="rem", radius=8).offset is N.pgd_offset
  em = core.CraftSpec(method="em", radius=8, steps=2)
  assert em.adversary == core.NO_ATTACK and em.offset is N.no_offset
  x = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (4, 8, 8, 1)), jnp.float32)
  y, keys = jnp.arange(4) % 3, core.per_sample(jax.random.key(1), np.arange(4))
  d = jnp.zeros_like(x)
  g_sem, _ = N.expected_grad(sem, _linear_logits, x, y, d, keys)
  g_em, _ = N.expected_grad(em, _linear_logits, x, y, d, keys)
  assert float(jnp.abs(g_sem - g_em).max()) > 1e-3 * float(jnp.abs(g_em).max())   # the offset acts


@pytest.mark.parametrize("make,pattern", [
    (lambda: core.sem(radius=16 / 255), r"radius=0\.0627.* below one pixel level: did you pass a fraction\? .*radius=16"),
    (lambda: core.sem(radius=8, step_size=1.6 / 255, adv_radius=4 / 255), r"sem: adv_radius=0\.0156.* adv_radius=4, not 4/255"),
    (lambda: core.sem(radius=8, step_size=1.6 / 255), r"step_size=0\.00627 levels is below 0\.02 of a level: did you pass a fraction\? .*step_size=1\.6"),
    (lambda: core.AttackSpec(radius=4 / 255), r"below one pixel level"),
    (lambda: core.CraftSpec(method="sem", radius=8 / 255), r"did you pass a fraction"),
    (lambda: core.CraftSpec(method="em", radius=8 / 255, step_size=1.6), r"did you pass a fraction"),
    (lambda: core.CraftSpec(method="em", radius=8, step_size=16), r"step_size=16 levels is larger than radius=8 levels; a step may be at most radius"),
    (lambda: core.AttackSpec(radius=4, step_size=9), r"larger than radius=4 levels; a step may be at most 2 x radius"),
    (lambda: core.CraftSpec(method="fancy", radius=8), "unknown method 'fancy'"),
    (lambda: core.sem(radius=300), r"radius=300 levels does not fit int8 noise \(at most 127"),
    (lambda: core.em(radius=-8), r"radius must be a finite number of pixel levels >= 0"),
    (lambda: core.CraftSpec(method="em", radius=8, adversary=core.AttackSpec(4)), "no adversarial offset"),
    (lambda: core.CraftSpec(method="sem", radius=8, steps=0), "steps and num_samples must be >= 1"),
    (lambda: core.CraftSpec(method="sem", radius=8, start="zero"), "start 'zero'"),
    (lambda: core.CraftSpec(method="sem", radius=8, adversary=(4, 10, 0.8)), "must be a core.AttackSpec"),
])
def test_an_inconsistent_or_fractional_spec_is_refused_with_the_remedy(make, pattern):
  with pytest.raises(SemJaxError, match=pattern):
    make()


def test_radius_means_pixel_levels_in_every_public_function():
  """One unit per name: the spec, the constructor and pgd all read radius=4 as 4/255."""
  f = _linear_logits
  x = jnp.zeros((2, 8, 8, 1))
  y, keys = jnp.array([0, 1]), core.per_sample(jax.random.key(0), np.arange(2))
  adv = core.pgd(f, x, y, keys, radius=4, steps=3, step_size=2)
  np.testing.assert_allclose(float(jnp.abs(adv - x).max()), 4 / 255, rtol=1e-5)
  via_spec = core.AttackSpec(radius=4, steps=3, step_size=2)(f, x, y, keys)
  np.testing.assert_array_equal(adv, via_spec)
  delta = core.CraftSpec(method="em", radius=4, steps=2, step_size=2, num_samples=1)(f, x, y, keys)
  np.testing.assert_allclose(float(jnp.abs(delta).max()), 4 / 255, rtol=1e-5)


def _linear_logits(x):
  w = jnp.linspace(-1.0, 1.0, x[0].size * 3).reshape(-1, 3)
  return x.reshape(x.shape[0], -1) @ w


def _craft_reference(spec, f, x, y, keys):
  """craft written out step by step from its documented parts (not through attacks.iterate):
    δ0 = U[-ρu, ρu] from fold(key, 0); δ <- clip(δ - α sign(g_k), -ρu, ρu), g_k the
    expected gradient under fold(key, k + 1)."""
  r, a = spec.radius / 255, spec.step_size / 255
  delta = jnp.stack([jax.random.uniform(jax.random.fold_in(k, 0), x.shape[1:], minval=-r, maxval=r)
                     for k in keys])
  for k in range(spec.steps):
    g, _ = N.expected_grad(spec, f, x, y, delta, jnp.stack([jax.random.fold_in(kk, k + 1) for kk in keys]))
    delta = jnp.clip(delta - a * jnp.sign(g), -r, r)
  return delta


@pytest.mark.slow
class CoreVariantsTest(chex.TestCase):
  """Each public function against an independent reference, traced by jit, run op by op and
  (where it is per-sample) mapped over devices by pmap."""

  def _batch(self, b=4):
    x = jax.random.uniform(jax.random.key(0), (b, 8, 8, 1), minval=-0.5, maxval=0.5)
    return x, jnp.arange(b) % 3, K.per_sample(jax.random.key(1), jnp.arange(b))

  @chex.variants(with_jit=True, without_jit=True)
  def test_craft_follows_its_steps_and_descends_the_loss(self):
    spec = core.sem(radius=8, steps=3, step_size=2.0, samples=2, adv_radius=4)
    x, y, keys = self._batch()
    delta = self.variant(lambda x, y, k: N.craft(spec, _linear_logits, x, y, k))(x, y, keys)
    np.testing.assert_allclose(delta, _craft_reference(spec, _linear_logits, x, y, keys), atol=1e-6)
    assert float(jnp.abs(delta).max()) <= 8 / 255 + 1e-7 and float(jnp.abs(delta).max()) > 7 / 255
    lk = K.fold_each(keys, 99)
    loss = lambda d: float(N.expected_loss(spec, _linear_logits, x, y, d, lk).mean())
    assert loss(delta) < loss(jnp.zeros_like(delta)) - 1e-3

  @chex.variants(with_jit=True, without_jit=True, with_pmap=True)
  def test_quantize_and_protect_round_trip_levels(self):
    delta = jnp.array([-9.4, -8.0, -0.6, 0.4, 7.6, 12.0]) / 255
    x = jnp.array([0, 3, 100, 250, 251, 255], jnp.uint8)
    both = self.variant(lambda d, x: (core.quantize(d, 8), core.protect(x, core.quantize(d, 8))))
    q, out = both(delta, x)    # pmap: broadcast to every device, the first device's output
    np.testing.assert_array_equal(q, np.array([-8, -8, -1, 0, 8, 8], np.int8))
    assert q.dtype == jnp.int8
    np.testing.assert_array_equal(out, np.array([0, 0, 99, 250, 255, 255], np.uint8))

  @chex.variants(with_jit=True, without_jit=True)
  def test_augment_is_a_flipped_shifted_crop_of_the_padded_image(self):
    pad = 2
    x = jax.random.uniform(jax.random.key(2), (6, 8, 8, 2), minval=-0.5, maxval=0.5)
    keys = K.per_sample(jax.random.key(3), jnp.arange(6))
    out = np.asarray(self.variant(lambda x, k: core.augment(x, k, pad))(x, keys))
    xp = np.pad(np.asarray(x), ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=-0.5)
    moved = 0
    for b in range(6):
      views = {(f, dy, dx): (xp[b, dy:dy + 8, dx:dx + 8] if not f else
                             np.pad(np.asarray(x)[b, :, ::-1], ((pad, pad), (pad, pad), (0, 0)),
                                    constant_values=-0.5)[dy:dy + 8, dx:dx + 8])
               for f in (0, 1) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)}
      match = [k for k, v in views.items() if np.array_equal(v, out[b])]
      assert match, f"image {b} is no flip / crop of its padded self"
      moved += match[0] != (0, pad, pad)
    assert moved >= 3      # the keys draw different views, not the identity

  @chex.variants(with_jit=True, without_jit=True, with_pmap=True)
  def test_pgd_stays_in_its_ball_and_raises_the_loss(self):
    x, y, keys = self._batch(2)
    attack = core.AttackSpec(radius=4, steps=5, step_size=1)
    fn = self.variant(lambda x, y, k: attack(_linear_logits, x, y, k))
    adv = fn(x, y, keys)      # pmap: broadcast to every device, the first device's output
    assert float(jnp.abs(adv - x).max()) <= 4 / 255 + 1e-6
    ce = lambda v: float(N.attacks.ce(_linear_logits(v), y).sum())
    assert ce(adv) > ce(x)

  @chex.variants(with_jit=True, without_jit=True)
  def test_update_takes_the_optimizer_step_of_the_loss_gradient(self):
    import flax.linen as nn

    class Net(nn.Module):
      @nn.compact
      def __call__(self, x):
        return nn.Dense(3)(x.reshape(len(x), -1))

    model, tx = Net(), optax_sgd(0.5)
    state = core.init_state(model, tx, jax.random.key(0), (8, 8, 1))
    x, y, _ = self._batch()
    new, metrics = self.variant(lambda s, x, y: core.update(model, tx, s, x, y))(state, x, y)
    loss = lambda p: N.attacks.ce(model.apply({"params": p}, x), y).mean()
    g = jax.grad(loss)(state.params)
    want = jax.tree_util.tree_map(lambda p, gp: p - 0.5 * gp, state.params, g)
    chex.assert_trees_all_close(new.params, want, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"], loss(state.params), rtol=1e-6)


def optax_sgd(lr):
  import optax
  return optax.sgd(lr)
