"""GUE's BOME step (core.poisons.gue) assembled from separately computed gradients: the
follower's best response, λ, and both players' updates."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sem_jax.core import train
from sem_jax.core.nets.models import create_model
from sem_jax.core.poisons import deepconfuse as DC, gue


def test_max_wrong_ce_is_the_largest_cross_entropy_of_a_wrong_class():
  logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
  y = jnp.array([0, 2])
  logp = np.asarray(jax.nn.log_softmax(logits))
  assert np.allclose(gue.max_wrong_ce(logits, y), [-logp[0, 2], -logp[1, 0]])


def test_gues_generator_standardises_its_output_and_starts_at_a_noise_that_survives_rounding():
  x = jax.random.uniform(jax.random.key(0), (6, 16, 16, 1)) - 0.5
  gen = gue.generator(1)
  params = gen.init(jax.random.key(1), x)["params"]

  def scaled(k):   # the last convolution's kernel and bias times k
    out = dict(params)
    out["ConvTranspose_2"] = jax.tree_util.tree_map(lambda v: k * v, params["ConvTranspose_2"])
    return out

  # once the last layer's output variance dwarfs the GroupNorm's epsilon (1e-5), its scale
  # does not matter and each image's pre-tanh output has mean 0 and standard deviation 1
  big = np.asarray(gen.apply({"params": scaled(100.0)}, x), np.float64)
  np.testing.assert_allclose(gen.apply({"params": scaled(1000.0)}, x), big, atol=2e-4)
  z = np.arctanh(big).reshape(6, -1)
  np.testing.assert_allclose(z.mean(1), 0, atol=1e-3)
  np.testing.assert_allclose(z.std(1), 1, rtol=1e-2)
  # at ρu 8 most of its quantised noise is non-zero from the start; the plain auto-encoder's
  # output (mean |g| ~0.003) rounds to zero almost everywhere
  spec = DC.DCSpec(8.0, 0.0)
  levels = lambda g, p: np.rint(np.asarray(DC.noise_of(g, p, spec, x)) * 255)
  assert np.mean(levels(gen, params) != 0) > 0.8
  plain = DC.NoiseGenerator(1)
  assert np.mean(levels(plain, plain.init(jax.random.key(1), x)["params"]) != 0) < 0.01


@pytest.mark.parametrize("eta", [1.5, 1e-6])
def test_one_step_is_bomes_update(eta):
  model = create_model("small_cnn", 4, 4)
  lr, lr_gen = 0.05, 0.1
  tx, gen_tx = optax.sgd(lr), optax.sgd(lr_gen)
  cls = train.init_state(model, tx, jax.random.key(0), (16, 16, 1))
  gen = gue.generator(1)
  gp = gen.init(jax.random.key(1), jnp.zeros((1, 16, 16, 1)))["params"]
  state = DC.DCState(cls, gp, gen_tx.init(gp))
  x = jax.random.uniform(jax.random.key(2), (8, 16, 16, 1)) - 0.5
  y = jnp.arange(8) % 4
  spec = gue.GUESpec(radius=8.0, eta=eta, inner_steps=3, inner_lr=1e-3)
  new, m = gue.step(model, tx, gen, gen_tx, spec, state, x, y)
  # the same quantities, one gradient at a time
  bs = cls.batch_stats
  poisoned = lambda a: jnp.clip(x + DC.noise_of(gen, a, DC.DCSpec(8.0, 0.0), x), -0.5, 0.5)
  g = lambda a, p: DC.train_mode_ce(model, p, bs, poisoned(a), y)
  p, inner = cls.params, optax.adam(1e-3)
  o = inner.init(p)
  for _ in range(3):
    u, o = inner.update(jax.grad(g, argnums=1)(gp, p), o, p)
    p = optax.apply_updates(p, u)
  f = lambda q: gue.max_wrong_ce(gue._train_logits(model, q, bs, x), y).mean()
  gf = jax.grad(f)(cls.params)
  gq_t = jax.grad(g, argnums=1)(gp, cls.params)
  gq_a = jax.tree_util.tree_map(lambda a, b: a - b, jax.grad(g)(gp, cls.params), jax.grad(g)(gp, p))
  leaves = lambda t: jax.tree_util.tree_leaves(t)
  norm = sum(float(jnp.sum(v ** 2)) for v in leaves(gq_a) + leaves(gq_t))
  dot = sum(float(jnp.sum(a * b)) for a, b in zip(leaves(gf), leaves(gq_t)))
  lam = max(0.0, (eta * norm - dot) / (norm + 1e-8))
  assert float(m["lambda"]) == pytest.approx(lam, rel=1e-4, abs=1e-6)
  want_gen = jax.tree_util.tree_map(lambda w, d: w - lr_gen * lam * d, gp, gq_a)
  want_cls = jax.tree_util.tree_map(lambda w, a, b: w - lr * (a + lam * b), cls.params, gf, gq_t)
  for got, want in ((new.gen_params, want_gen), (new.classifier.params, want_cls)):
    for a, b in zip(leaves(got), leaves(want)):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
  assert int(new.classifier.step) == 1
  assert float(m["clean_loss"]) == pytest.approx(float(f(cls.params)), rel=1e-5)
  # the best response unrolled (what the command runs on CPU) is the same step
  unrolled, m2 = gue.step(model, tx, gen, gen_tx, gue.GUESpec(8.0, eta, 3, 1e-3, unroll=True),
                          state, x, y)
  assert float(m2["lambda"]) == pytest.approx(float(m["lambda"]), rel=1e-5, abs=1e-7)
  for a, b in zip(leaves(unrolled.gen_params), leaves(new.gen_params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
