"""The field's other attacks in the core layer, against their definitions on tiny inputs:
LSP, AR and OPS (sem_jax.core.poisons.patterns, one_pixel), NTGA's kernel (ntga), DeepConfuse's
step (deepconfuse) and the budgets every method declares (budgets)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sem_jax.core.crafting import budgets

from sem_jax.core.poisons import deepconfuse as DC, ntga, one_pixel, patterns

from sem_jax.core import keys as K, train
from sem_jax.core.nets.models import create_model


def _keys(n, seed=0):
  return K.per_sample(jax.random.key(seed), jnp.arange(n))


# ----------------------------------------------------------------------------- LSP
def test_lsp_is_patch_constant_on_the_l2_sphere_and_class_clustered():
  labels = np.arange(60) % 3
  shape, patch, radius = (16, 16, 3), 4, 6 / 255
  noise = np.asarray(patterns.lsp_noise(jax.random.key(1), _keys(60), labels, 3, shape, patch,
                                        radius))
  norms = np.sqrt((noise ** 2).reshape(60, -1).sum(1))
  np.testing.assert_allclose(norms, radius * math.sqrt(16 * 16 * 3), rtol=1e-5)
  cells = noise.reshape(60, 4, patch, 4, patch, 3)
  assert np.allclose(cells, cells[:, :, :1, :, :1, :])          # constant per patch
  grid = cells[:, :, 0, :, 0, :].reshape(60, -1)
  centres = np.stack([grid[labels == k].mean(0) for k in range(3)])
  nearest = np.argmin(((grid[:, None] - centres[None]) ** 2).sum(-1), 1)
  assert (nearest == labels).all()                               # separable by class
  again = patterns.lsp_noise(jax.random.key(1), _keys(60), labels, 3, shape, patch, radius)
  assert np.array_equal(noise, np.asarray(again))
  other = patterns.lsp_noise(jax.random.key(2), _keys(60), labels, 3, shape, patch, radius)
  assert not np.allclose(noise, np.asarray(other))


def test_lsp_quantised_levels_never_leave_the_ball():
  labels = np.arange(40) % 4
  delta = patterns.lsp_noise(jax.random.key(0), _keys(40), labels, 4, (12, 12, 1), 4, 6 / 255)
  levels = budgets.to_levels(delta)
  budget = budgets.l2(6 * 12, patch=4)
  assert budgets.block_violations(budget, levels) == 0
  assert budgets.block_violations(budgets.l2(6 * 12 * 0.5, patch=4), levels) == 40


# ----------------------------------------------------------------------------- AR
def test_one_ar_step_by_hand():
  b = jnp.asarray([[[0.5, 0.0, 0.25], [0.0, -0.5, 1.0], [0.25, 0.5, 0.0]]])   # (C=1, 3, 3)
  start = np.zeros((1, 3, 3, 1), np.float32)
  start[0, :, :, 0] = [[1, 2, 3], [4, 5, 6], [7, 8, 99]]
  out = patterns.ar_realise(b[None], jnp.asarray(start), 0)
  # 0.5*1 + 0.25*3 - 0.5*5 + 1*6 + 0.25*7 + 0.5*8 = 10.5; the 99 is overwritten
  assert float(out[0, 2, 2, 0]) == pytest.approx(10.5)
  assert float(out[0, 0, 0, 0]) == 1.0                          # the start rows stay


@pytest.mark.slow
def test_ar_noise_follows_its_class_filter_and_budget():
  coeffs = patterns.ar_coefficients(jax.random.key(3), 3, 2)
  np.testing.assert_allclose(np.asarray(coeffs.sum(axis=(2, 3))), 1.0, rtol=1e-5)
  assert float(jnp.abs(coeffs[:, :, -1, -1]).max()) == 0.0
  labels = np.array([0, 1, 2, 0, 1, 2])
  noise = patterns.ar_noise(_keys(6), coeffs, labels, (12, 12, 2), 1.0, "l2", crop=4)
  np.testing.assert_allclose(np.sqrt((np.asarray(noise) ** 2).reshape(6, -1).sum(1)), 1.0,
                             rtol=1e-5)
  own = patterns.ar_residual(coeffs[labels], noise)
  scale = float(jnp.abs(noise).max())
  assert float(jnp.abs(own).max()) < 1e-4 * scale                # its own class's process
  wrong = patterns.ar_residual(coeffs[(labels + 1) % 3], noise)
  assert float(jnp.abs(wrong).max()) > 1e-2 * scale              # not another class's
  linf = patterns.ar_noise(_keys(6), coeffs, labels, (12, 12, 2), 8 / 255, "linf")
  np.testing.assert_allclose(np.asarray(jnp.abs(linf).max(axis=(1, 2, 3))), 8 / 255, rtol=1e-5)


# ----------------------------------------------------------------------------- OPS
def _ops_reference(x, labels, k, taken):
  """The best free (row, column, colour) of class k by the definition, pixel by pixel."""
  best, arg = -1.0, None
  for code in range(2):
    for r in range(x.shape[1]):
      for c in range(x.shape[2]):
        d = np.abs(code - x[labels == k, r, c, 0] / 255.0)
        score = np.inf if d.std() == 0 and d.mean() > 0 else d.mean() / d.std()
        if (r, c, code) not in taken and score > best:
          best, arg = score, (r, c, code)
  return arg


def test_ops_picks_the_pixel_by_hand_on_a_three_class_toy():
  labels = np.repeat(np.arange(3), 3)
  x = np.array([[[40, 200], [90, 160]], [[210, 30], [170, 60]], [[120, 110], [20, 230]]] * 3,
               np.uint8)[..., None]                              # every pixel spread in a class
  x[0:3, 0, 1, 0] = [10, 12, 11]  # class 0: (0, 1) dark and steady: white scores 0.957 / 0.003
  x[3:6, 1, 0, 0] = [250, 252, 251]   # class 1: (1, 0) bright and steady: black
  chosen = one_pixel.search(x, labels, 3)
  assert chosen[0] == (0, 1, 1) and chosen[1] == (1, 0, 0)
  assert chosen[2] == _ops_reference(x, labels, 2, set(chosen[:2]))
  assert len(set(chosen)) == 3
  noise = one_pixel.noise(x, labels, chosen)
  assert noise.dtype == np.int16
  published = x.astype(np.int16) + noise
  assert (published[0:3, 0, 1, 0] == 255).all() and (published[3:6, 1, 0, 0] == 0).all()
  assert ((noise != 0).reshape(9, -1).sum(1) <= 1).all()
  assert budgets.block_violations(budgets.l0(1), noise, x) == 0


def test_ops_takes_a_pair_once():
  x = np.zeros((4, 2, 2, 1), np.uint8)                   # every class sees the same images:
  chosen = one_pixel.search(x, np.arange(4) % 2, 2)      # both would pick (0, 0, white)
  assert chosen[0] == (0, 0, 1) and chosen[1] != chosen[0]


def test_ops_colours_cover_the_cube():
  assert one_pixel.colours(3).tolist()[5] == [1, 0, 1]
  assert len({tuple(c) for c in one_pixel.colours(3)}) == 8


# ----------------------------------------------------------------------------- budgets
def test_budget_checks_catch_each_violation():
  clean = np.full((2, 4, 4, 1), 100, np.uint8)
  ok = np.zeros((2, 4, 4, 1), np.int16)
  ok[:, 1, 2] = 155                                               # -> 255: allowed
  assert budgets.block_violations(budgets.l0(1), ok, clean) == 0
  two = ok.copy()
  two[1, 0, 0] = -100                                             # a second pixel
  assert budgets.block_violations(budgets.l0(1), two, clean) == 1
  grey = ok.copy()
  grey[0, 1, 2] = 50                                              # 150 is not 0 or 255
  assert budgets.block_violations(budgets.l0(1), grey, clean) == 1
  flat = np.full((1, 4, 4, 1), 3, np.int8)
  assert budgets.block_violations(budgets.l2(12.0, patch=2), flat) == 0   # L2 = 12
  assert budgets.block_violations(budgets.l2(11.9, patch=2), flat) == 1
  flat[0, 0, 1] = 2                                               # breaks a 2x2 patch
  assert budgets.block_violations(budgets.l2(12.0, patch=2), flat) == 1
  assert budgets.block_violations(budgets.linf(3), np.full((3, 2, 2, 1), 4, np.int8)) == 3
  assert budgets.storage_dtype(budgets.l0(1)) == np.int16
  assert budgets.storage_dtype(budgets.l2(5.0)) == np.int8


# ----------------------------------------------------------------------------- NTGA
def _empirical_ntk(x, width, depth, key):
  """J J^T of one wide finite ReLU network (NTK parameterisation), scalar output."""
  d = x.shape[1]
  ks = jax.random.split(key, 2 * depth + 2)
  dims = [d] + [width] * depth + [1]
  params = [(jax.random.normal(ks[2 * i], (dims[i], dims[i + 1])),
             jax.random.normal(ks[2 * i + 1], (dims[i + 1],))) for i in range(depth + 1)]

  def f(p, xi):
    h = xi
    for i, (w, b) in enumerate(p):
      h = math.sqrt(ntga.W_VAR / dims[i]) * h @ w + math.sqrt(ntga.B_VAR) * b
      if i < depth:
        h = jax.nn.relu(h)
    return h[0]

  jac = jax.vmap(lambda xi: jax.grad(f)(params, xi))(x)
  flat = jnp.concatenate([j.reshape(len(x), -1) for j in jax.tree_util.tree_leaves(jac)], 1)
  return flat @ flat.T


@pytest.mark.slow
def test_analytic_ntk_matches_a_wide_network():
  x = jax.random.normal(jax.random.key(0), (4, 6))
  _, theta = ntga.ntk(x, x, depth=2)
  emp = np.mean([np.asarray(_empirical_ntk(x, 1024, 2, jax.random.key(s))) for s in range(4)], 0)
  np.testing.assert_allclose(emp, np.asarray(theta), rtol=0.1, atol=0.05 * float(theta.max()))
  nngp, _ = ntga.ntk(x, x, depth=0)
  np.testing.assert_allclose(np.asarray(nngp), ntga.W_VAR * x @ x.T / 6 + ntga.B_VAR, rtol=1e-5)


@pytest.mark.slow
def test_ntga_block_stays_in_budget_and_raises_the_target_loss():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(-0.5, 0.5, (12, 4, 4, 1)), jnp.float32)
  xt = jnp.asarray(rng.uniform(-0.5, 0.5, (8, 4, 4, 1)), jnp.float32)
  eye = jnp.eye(3)
  y, yt = eye[np.arange(12) % 3], eye[np.arange(8) % 3]
  spec = ntga.NTGASpec(radius=8, steps=5, step_size=2, time=64.0, depth=2)
  delta = ntga.attack_block(spec, x, y, xt, yt)
  assert float(jnp.abs(delta).max()) <= 8 / 255 + 1e-7
  assert float(jnp.abs(x + delta).max()) <= 0.5 + 1e-7
  flat = lambda a: a.reshape(a.shape[0], -1)
  before = ntga.target_loss(flat(x), y, flat(xt), yt, spec)
  after = ntga.target_loss(flat(x + delta), y, flat(xt), yt, spec)
  assert float(after) > float(before)


# ----------------------------------------------------------------------------- DeepConfuse
@pytest.mark.slow
def test_deepconfuse_step_bounds_noise_and_moves_the_generator_uphill():
  model = create_model("linear", 3)
  tx = optax.sgd(0.1)
  cls = train.init_state(model, tx, jax.random.key(0), (8, 8, 1))
  gen = DC.NoiseGenerator(1, width=4)
  gen_tx = optax.adam(1e-2)
  gp = gen.init(jax.random.key(1), jnp.zeros((1, 8, 8, 1)))["params"]
  state = DC.DCState(cls, gp, gen_tx.init(gp))
  spec = DC.DCSpec(radius=8, lookahead_lr=0.1, augment_pad=-1)
  x = jax.random.uniform(jax.random.key(2), (6, 8, 8, 1), minval=-0.5, maxval=0.5)
  y = jnp.arange(6) % 3
  delta = DC.noise_of(gen, gp, spec, x)
  assert delta.shape == x.shape and float(jnp.abs(delta).max()) <= 8 / 255
  step = jax.jit(lambda s: DC.step(model, tx, gen, gen_tx, spec, s, x, y, _keys(6)))
  losses = []
  for _ in range(4):
    state, m = step(state)
    losses.append(float(m["clean_loss"]))
  assert all(np.isfinite(losses)) and int(state.classifier.step) == 4
  assert not np.allclose(np.asarray(DC.noise_of(gen, state.gen_params, spec, x)),
                         np.asarray(delta))
