"""The estimator's gradients against float64 central differences (docs/method.md, "The noise
generators"): EM's and SEM's expected gradient is the gradient of the expected loss with the
draws held fixed; REM's is the gradient at the inner maximiser (Danskin), which PGD ascends."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import enable_x64

from sem_jax import core
from sem_jax.core import keys as K
from sem_jax.core.crafting import noise as N


def _ce64(logits, y):
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float64), y)


def _model():
  rng = np.random.default_rng(0)
  w1, w2 = (jnp.asarray(rng.normal(size=s), jnp.float64) for s in ((48, 6), (6, 3)))
  return lambda x: jnp.tanh(x.reshape(len(x), -1) @ w1 * 3.0) @ w2


def _central(fn, delta, v, h=1e-5):
  return (fn(delta + h * v) - fn(delta - h * v)) / (2 * h)


def _setup():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.uniform(-0.3, 0.3, (3, 4, 4, 3)), jnp.float64)
  delta = jnp.asarray(rng.uniform(-2, 2, x.shape) / 255, jnp.float64)
  return x, jnp.array([0, 2, 1]), delta, K.per_sample(jax.random.key(3), jnp.arange(3)), rng


def test_em_and_sem_expected_gradient_matches_float64_differences():
  with enable_x64():
    f = _model()
    x, y, delta, keys, rng = _setup()
    for spec in (core.em(radius=8, steps=1, step_size=1, samples=3, augment_pad=1, loss=_ce64),
                 core.sem(radius=8, steps=1, step_size=1, samples=3, adv_radius=2,
                          augment_pad=1, loss=_ce64)):
      g, _ = N.expected_grad(spec, f, x, y, delta, keys)
      total = lambda d: N.expected_loss(spec, f, x, y, d, keys).sum()
      for _ in range(3):
        v = jnp.asarray(rng.normal(size=x.shape), jnp.float64)
        np.testing.assert_allclose(float(jnp.vdot(g, v)), float(_central(total, delta, v)),
                                   rtol=1e-6, atol=1e-9)


def test_rem_gradient_is_the_gradient_at_the_inner_maximiser():
  with enable_x64():
    f = _model()
    x, y, delta, keys, rng = _setup()
    spec = core.rem(radius=8, steps=1, step_size=1, samples=1, adv_radius=4, adv_steps=5,
                    adv_step_size=1, augment_pad=-1, loss=_ce64)
    g, _ = N.expected_grad(spec, f, x, y, delta, keys)
    # the inner maximiser for the same draw (J = 1: sample keys, then (augment, offset) keys)
    k_off = K.split_each(K.split_each(keys, 1)[0], 2)[1]
    a_star = spec.adversary(f, x + delta, y, k_off)
    at = lambda a: _ce64(f(a), y).sum()
    for _ in range(3):
      v = jnp.asarray(rng.normal(size=x.shape), jnp.float64)
      np.testing.assert_allclose(float(jnp.vdot(g, v)), float(_central(at, a_star, v)),
                                 rtol=1e-6, atol=1e-9)
    # PGD ascended: the maximiser's loss beats its start and random points of the ball
    start = at(x + delta)
    ball = [at(jnp.clip(x + delta + jnp.asarray(rng.uniform(-4, 4, x.shape) / 255), -0.5, 0.5))
            for _ in range(5)]
    assert float(at(a_star)) > max(float(start), *map(float, ball))
    assert float(jnp.abs(a_star - (x + delta)).max()) <= 4 / 255 + 1e-12
