"""The defensive-noise estimators: bounds, a float64 reference gradient, descent and ascent."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax.core import attacks, keys as K, train

from sem_jax.core.crafting import noise as N
from sem_jax.core.augment import augment, augment_params
from sem_jax.run.config import GenerateConfig
from sem_jax.run.specs import craft_spec
from sem_jax.core.units import normalize
from sem_jax.data.sources import load_mnist5k
from sem_jax.core.nets.models import Linear, create_model


@pytest.fixture(scope="module")
def digits():
  ds = load_mnist5k()
  x = normalize(ds.train_images[:24])
  return jnp.asarray(x), jnp.asarray(ds.train_labels[:24])


@pytest.fixture(scope="module")
def trained_cnn(digits):
  """A width-8 SmallCNN after 150 plain SGD steps on 2048 digits (train loss ~0.3). Flax's
  initialisation: the loss bounds below were calibrated on this model (with PyTorch's, the
  smaller initial weights leave it less trained after 150 steps)."""
  ds = load_mnist5k()
  model = create_model("small_cnn", 10, 8, init="flax")
  tx = train.paper_sgd(learning_rate=0.1)
  state = train.init_state(model, tx, jax.random.key(1), (32, 32, 1))
  step = jax.jit(lambda s, x, y: train.update(model, tx, s, x, y))
  for i in range(150):
    sl = slice((i * 64) % 2048, (i * 64) % 2048 + 64)
    state, _ = step(state, normalize(ds.train_images[sl]), ds.train_labels[sl])
  return model, state


def spec_for(method, **kw):
  base = dict(method=method, noise_steps=5, noise_step_size=1.6, num_samples=3, adv_steps=5,
              adv_step_size=1.6, augment_pad=4, unroll_loops=False)
  base.update(kw)
  return craft_spec(GenerateConfig(**base))


@pytest.mark.parametrize("method", ["sem", "rem", "em"])
def test_crafted_noise_is_bounded_int8_and_finite(method, digits, trained_cnn):
  model, state = trained_cnn
  x, y = digits
  spec = spec_for(method, noise_radius=8.0, noise_step_size=3.0)
  keys = K.per_sample(jax.random.key(0), jnp.arange(x.shape[0]))
  delta = jax.jit(lambda s: N.craft(spec, train.logits_fn(model, s), x, y, keys))(state)
  assert np.isfinite(np.asarray(delta)).all()
  assert float(jnp.abs(delta).max()) <= 8 / 255 + 1e-7
  q = np.asarray(N.quantize(delta, spec.int8_bound))
  assert q.dtype == np.int8 and np.abs(q.astype(int)).max() <= 8
  assert np.abs(q.astype(int)).max() == 8          # sign steps of 3 levels reach the boundary
  # int8 round trip: the quantised noise is round(255 δ) exactly
  np.testing.assert_array_equal(q, np.round(np.asarray(delta) * 255).astype(np.int8))


def test_tap_starts_uniform_as_the_release_or_at_zero(digits, trained_cnn):
  """TAP's default start is U[-ρu, ρu] (the release's --pgd-random-start); tap_start="zero"
  starts at 0. Two steps of 0.5 levels cannot move δ far from where it started."""
  model, state = trained_cnn
  x, y = digits
  keys = K.per_sample(jax.random.key(0), jnp.arange(x.shape[0]))
  out = {}
  for start in ("uniform", "zero"):
    spec = spec_for("tap", tap_model="x", tap_start=start, noise_steps=2, noise_step_size=0.5)
    assert spec.start == start
    out[start] = np.asarray(spec(train.logits_fn(model, state), x, y, keys)) * 255
  assert np.abs(out["zero"]).max() <= 1.0 + 1e-4
  assert np.abs(out["uniform"]).max() <= 8 + 1e-4
  assert abs(out["uniform"].std() - 8 / np.sqrt(3)) < 0.2    # U[-8, 8] has std 4.62 levels
  assert GenerateConfig(method="tap", tap_model="x").tap_start == "uniform"


def test_quantize_clips_fractional_radius():
  d = jnp.array([-1.0, -8.6 / 255, 8.49 / 255, 8.6 / 255, 1.0])
  np.testing.assert_array_equal(np.asarray(N.quantize(d, 8)), [-8, -8, 8, 8, 8])


def test_apply_noise_matches_published_uint8():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (4, 5, 5, 3)).astype(np.uint8)
  n = rng.integers(-8, 9, (4, 5, 5, 3)).astype(np.int8)
  from sem_jax.core.units import protect
  expect = protect(x, n).astype(np.float64) / 255 - 0.5
  np.testing.assert_allclose(np.asarray(N.apply_noise(jnp.asarray(x), jnp.asarray(n))), expect, atol=1e-7)
  assert protect(np.array([250], np.uint8), np.array([8], np.int8))[0] == 255
  assert protect(np.array([3], np.uint8), np.array([-8], np.int8))[0] == 0


def _reference_sem_grad(W, b, x, y, delta, keys, spec):
  """SEM estimator in float64 numpy, loop over samples and draws, no vmap/scan/autodiff."""
  x, delta, W, b = (np.asarray(v, np.float64) for v in (x, delta, W, b))
  B, H, Wd, C = x.shape
  p = spec.augment_pad
  total = np.zeros_like(x)
  sample_keys = K.split_each(keys, spec.num_samples)  # the reference reuses the same draws
  for j in range(spec.num_samples):
    for i in range(B):
      k_aug, k_off = jax.random.split(sample_keys[j, i])
      flip, dy, dx = (int(v) for v in augment_params(k_aug, p))
      r = np.asarray(jax.random.uniform(k_off, (H, Wd, C), minval=-spec.adversary.radius_frac,
                                        maxval=spec.adversary.radius_frac), np.float64)
      s = x[i] + delta[i]
      inside = (s > -0.5) & (s < 0.5)
      v = np.clip(s, -0.5, 0.5)
      if flip:
        v = v[:, ::-1]
      vp = np.full((H + 2 * p, Wd + 2 * p, C), -0.5)
      vp[p:p + H, p:p + Wd] = v
      u = vp[dy:dy + H, dx:dx + Wd]
      a = np.clip(np.clip(u + r, u - spec.adversary.radius_frac, u + spec.adversary.radius_frac), -0.5, 0.5)
      logits = a.reshape(-1) @ W + b
      prob = np.exp(logits - logits.max())
      prob /= prob.sum()
      prob[y[i]] -= 1.0                       # dCE/dlogits
      g_u = (W @ prob).reshape(H, Wd, C)      # dCE/da, passed to u unchanged (a is constant)
      gp = np.zeros_like(vp)
      gp[dy:dy + H, dx:dx + Wd] = g_u         # transpose of the crop
      g_v = gp[p:p + H, p:p + Wd]             # transpose of the pad
      if flip:
        g_v = g_v[:, ::-1]
      total[i] += g_v * inside                # transpose of the clip
  return total / spec.num_samples


def test_sem_gradient_matches_float64_reference():
  rng = np.random.default_rng(0)
  B, H, C, classes = 3, 6, 2, 5
  x = rng.uniform(-0.5, 0.5, (B, H, H, C)).astype(np.float32)
  x[0, :2] = 0.499  # near the top of the range: clip is active where δ pushes past it
  x[1, :2] = -0.499
  delta = rng.uniform(-8 / 255, 8 / 255, x.shape).astype(np.float32)
  y = np.array([0, 3, 4])
  model = Linear(classes)
  params = model.init(jax.random.key(0), jnp.zeros((1, H, H, C)))
  W = rng.normal(size=(H * H * C, classes)).astype(np.float32)
  b = rng.normal(size=classes).astype(np.float32)
  params = {"params": {"Dense_0": {"kernel": jnp.asarray(W), "bias": jnp.asarray(b)}}}
  spec = spec_for("sem", num_samples=4, augment_pad=2, adv_radius=4.0)
  keys = K.per_sample(jax.random.key(7), jnp.arange(B))
  logits_fn = lambda a: model.apply(params, a)
  ours, _ = jax.jit(lambda d: N.expected_grad(spec, logits_fn, x, y, d, keys))(delta)
  ref = _reference_sem_grad(W, b, x, y, delta, keys, spec)
  assert np.abs(ref).max() > 0.1
  assert ((np.abs(ref) > 0) == (np.asarray(ours) != 0)).mean() > 0.999  # same support (clip mask)
  np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_em_estimator_is_the_exact_gradient_of_the_augmented_loss(digits, trained_cnn):
  """For EM (a = u) the estimator must equal autodiff of mean_j sum_b CE(f(t_j(clip(x+δ))))."""
  model, state = trained_cnn
  x, y = digits
  spec = spec_for("em", num_samples=3)
  keys = K.per_sample(jax.random.key(3), jnp.arange(x.shape[0]))
  f = train.logits_fn(model, state)
  delta = K.uniform_each(keys, x.shape[1:], 8 / 255)
  ours, _ = N.expected_grad(spec, f, x, y, delta, keys)

  def loss(d):
    total = 0.0
    sk = K.split_each(keys, 3)
    for j in range(3):
      k_aug = K.split_each(sk[j], 2)[0]
      u = augment(jnp.clip(x + d, -0.5, 0.5), k_aug, spec.augment_pad)
      total = total + attacks.ce_sum(f(u), y)
    return total / 3

  np.testing.assert_allclose(np.asarray(ours), np.asarray(jax.grad(loss)(delta)), rtol=1e-3,
                             atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sem", "rem", "em"])
def test_descent_decreases_the_loss_the_method_targets(method, digits, trained_cnn):
  model, state = trained_cnn
  x, y = digits
  spec = spec_for(method, noise_steps=10)  # the paper's K and α
  f = train.logits_fn(model, state)
  craft_keys = K.per_sample(jax.random.key(0), jnp.arange(x.shape[0]))
  eval_keys = K.per_sample(jax.random.key(99), jnp.arange(x.shape[0]))  # fresh draws
  delta = jax.jit(lambda: N.craft(spec, f, x, y, craft_keys))()
  zero = jnp.zeros_like(x)
  rand = K.uniform_each(eval_keys, x.shape[1:], spec.radius)
  loss = jax.jit(lambda d: N.expected_loss(spec, f, x, y, d, eval_keys).mean())
  l_craft, l_zero, l_rand = float(loss(delta)), float(loss(zero)), float(loss(rand))
  # evaluated on fresh (t, offset) draws: the noise lowers the expected loss, not just its own draws
  # (SEM and REM minimise a loss under an offset the noise cannot cancel, so they lower it
  # less than EM.) Ratios on one Intel CPU: EM 0.82, SEM 0.84, REM 0.91; the width-8 CNN of
  # 150 steps differs between CPUs, so the bounds leave room for that, not for no descent.
  bound = 0.95 if method == "rem" else 0.9
  assert l_craft < bound * min(l_zero, l_rand), (l_craft, l_zero, l_rand)


@pytest.mark.slow
def test_rem_inner_pgd_increases_the_loss(digits, trained_cnn):
  model, state = trained_cnn
  x, y = digits
  f = train.logits_fn(model, state)
  keys = K.per_sample(jax.random.key(5), jnp.arange(x.shape[0]))
  for norm, levels, step in (("linf", 4, 1), ("l2", 127.5, 25.5)):    # pixel levels
    adv = attacks.pgd(f, x, y, keys, radius=levels, steps=10, step_size=step, norm=norm)
    start = attacks.pgd(f, x, y, keys, radius=levels, steps=0, step_size=step, norm=norm)
    radius = levels / 255
    l_adv, l_start, l_x = (float(attacks.ce(f(v), y).mean()) for v in (adv, start, x))
    assert l_adv > 1.5 * l_x and l_adv > 1.5 * l_start, (norm, l_adv, l_start, l_x)
    d = np.asarray(adv - x).reshape(x.shape[0], -1)
    if norm == "linf":
      assert np.abs(d).max() <= radius + 1e-6
    else:
      assert np.linalg.norm(d, axis=1).max() <= radius + 1e-5
    assert float(adv.min()) >= -0.5 and float(adv.max()) <= 0.5


@pytest.mark.slow
def test_rem_step_costs_more_network_passes_than_sem():
  """REM's estimator runs its inner PGD; SEM's does not (compare compiled FLOPs)."""
  model = create_model("small_cnn", 10, 4)
  v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))
  f = lambda a: model.apply(v, a)
  x = jnp.zeros((8, 16, 16, 1))
  y = jnp.zeros(8, jnp.int32)
  keys = K.per_sample(jax.random.key(0), jnp.arange(8))
  flops = {}
  for m in ("sem", "rem"):
    spec = spec_for(m, num_samples=2, adv_steps=10, noise_steps=1, unroll_loops=True)  # XLA counts a loop body once
    c = jax.jit(lambda d: N.expected_grad(spec, f, x, y, d, keys)[0]).lower(x).compile()
    flops[m] = c.cost_analysis()["flops"]
  # 10 inner PGD steps (each forward + backward) plus one pass: about 11x, not less than 8x
  assert flops["rem"] > 8 * flops["sem"], flops
