"""The thief's other defenses against their definitions: BDR's levels, standardisation's
statistics, ISS's two, UEraser's augmentations (shapes, ranges, keyed) and its max-loss step;
and inside a real evaluate run: what the victim trains and is tested on."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_eval_config
from sem_jax.commands import evaluate as E
from sem_jax.core import attacks, train
from sem_jax.core.thief import defenses as D, ueraser as U
from sem_jax.core.nets.models import create_model
from sem_jax.data.sources import load_npz
from sem_jax.errors import SemJaxError
from sem_jax.run import specs
from sem_jax.run.config import EvalConfig


def _images(n=6, c=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, c), dtype=np.uint8)


def test_bdr_keeps_the_top_bits_exactly():
  x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  two = D.bit_depth(x, 2)
  assert set(np.unique(two)) == {0, 64, 128, 192}
  np.testing.assert_array_equal(two.ravel(), (np.arange(256) // 64) * 64)
  np.testing.assert_array_equal(D.bit_depth(x, 8), x)
  np.testing.assert_array_equal(D.bit_depth(x, 1).ravel(), (np.arange(256) >= 128) * 128)
  with pytest.raises(SemJaxError, match="bdr_bits"):
    D.bit_depth(x, 0)


def test_standardize_moves_each_image_channel_to_the_fixed_mean_and_spread():
  x = _images()
  x[0, ..., 1] = 7                                    # a flat channel stays flat, at the mean
  y = D.standardize(x, 128.0, 40.0).astype(np.float64)
  mean, std = y.mean(axis=(1, 2)), y.std(axis=(1, 2))
  assert np.abs(mean - 128).max() < 1.0 and y[0, ..., 1].min() == y[0, ..., 1].max() == 128
  std[0, 1] = 40.0
  assert np.abs(std - 40).max() < 1.0
  # a per-image colour cast (the noise on photos) is removed entirely
  cast = np.clip(x.astype(np.int16) + np.array([20, -10, 5], np.int16), 0, 255).astype(np.uint8)
  inside = (x > 30).all() and (x < 225).all()
  if inside:
    np.testing.assert_array_equal(D.standardize(cast, 128.0, 40.0), D.standardize(x, 128.0, 40.0))


def test_iss_is_grayscale_and_jpeg_at_quality_10():
  x = _images()
  np.testing.assert_array_equal(D.preprocess(x, ("iss_gray",)), D.grayscale(x))
  np.testing.assert_array_equal(D.preprocess(x, ("iss_jpeg",), jpeg_quality=90), D.jpeg(x, 10))
  assert not np.array_equal(D.jpeg(x, 10), D.jpeg(x, 90))


@pytest.mark.slow
def test_ueraser_keeps_shapes_and_ranges_and_is_keyed():
  x = jnp.asarray(_images(4, 3, 1), jnp.float32) / 255 - 0.5
  keys = jax.random.split(jax.random.key(0), 4)
  y = jax.jit(U.ueraser)(x, keys)
  assert y.shape == x.shape and float(y.min()) >= -0.5 and float(y.max()) <= 0.5
  np.testing.assert_array_equal(y, jax.jit(U.ueraser)(x, keys))
  other = jax.jit(U.ueraser)(x, jax.random.split(jax.random.key(1), 4))
  assert not np.array_equal(y, other)
  assert float(jnp.abs(y - x).mean()) > 0.05                   # a heavy augmentation
  gray = jax.jit(U.ueraser)(x[..., :1], keys)
  assert gray.shape == (4, 8, 8, 1)


def test_plasma_map_is_normalised_and_rougher_with_roughness():
  plasma = jax.jit(U.diamond_square, static_argnums=1)
  smooth = [plasma(jax.random.key(i), 33, 0.3) for i in range(4)]
  rough = [plasma(jax.random.key(i), 33, 0.9) for i in range(4)]
  for p in smooth + rough:
    assert p.shape == (33, 33) and float(p.min()) == 0.0 and abs(float(p.max()) - 1.0) < 1e-6
  tv = lambda ps: np.mean([float(jnp.abs(jnp.diff(p, axis=0)).mean()) for p in ps])
  assert tv(rough) > 1.5 * tv(smooth)


def test_trivial_augment_operations_against_their_definitions():
  x = jnp.asarray(_images(1, 3, 2)[0], jnp.float32) / 255
  op = lambda i, u: np.asarray(U.trivial_op(x, jnp.int32(i), jnp.float32(u)))
  for i in (2, 5, 6, 8, 9, 10, 11):   # rotate, contrast, brightness, shears, translations at 0
    np.testing.assert_allclose(op(i, 0.5), x, atol=1e-5)
  np.testing.assert_allclose(op(4, 0.25), np.where(x >= 0.25, 1 - x, x))            # solarize
  np.testing.assert_allclose(op(3, 0.0), np.floor(np.asarray(x) * 255 / 128) * 128 / 255,
                             atol=1e-6)                                             # 1 bit
  np.testing.assert_allclose(op(6, 1.0), np.clip(x + 0.9, 0, 1), atol=1e-6)          # brightness
  np.testing.assert_allclose(op(5, 0.0), x * 0.1, atol=1e-6)                         # contrast
  auto = op(0, 0.3)
  np.testing.assert_allclose(auto.min((0, 1)), 0, atol=1e-6)
  np.testing.assert_allclose(auto.max((0, 1)), 1, atol=1e-6)
  eq = op(1, 0.0)                                      # equalised: levels spread over [0, 1]
  assert eq.max() == 1.0 and np.all(np.diff(np.sort(np.unique(eq[..., 0]))) > 0)
  shifted = op(10, 1.0)                    # half the side: the right half now black
  assert np.all(shifted[:, 4:] == 0)
  np.testing.assert_allclose(shifted[:, :4], np.asarray(x)[:, 4:], atol=1e-6)


def test_the_max_loss_step_takes_each_samples_worst_view():
  net = create_model("linear", 3)
  tx = train.paper_sgd(0.1, 0.0, 0.0)
  state = train.init_state(net, tx, jax.random.key(0), (4, 4, 1))
  y = jnp.array([0, 1, 2])
  views = [jax.random.normal(jax.random.key(k), (3, 4, 4, 1)) for k in range(3)]
  new, m = train.update_max_over_views(net, tx, state, views, y)
  ce = jnp.stack([attacks.ce(train.predict(net, state, v), y) for v in views])
  np.testing.assert_allclose(float(m["loss"]), float(ce.max(0).mean()), rtol=1e-6)
  worst = jnp.argmax(ce, 0)
  mixed = jnp.stack([views[int(worst[b])][b] for b in range(3)])
  want, _ = train.update(net, tx, state, mixed, y)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               new.params, want.params)


def test_ueraser_strengths_set_the_share_of_max_loss_training():
  cfg = EvalConfig(defenses="ueraser", train_steps=400)
  assert specs.ueraser_max_until(cfg.replace(ueraser_strength="lite")) == 0
  assert specs.ueraser_max_until(cfg) == 100
  assert specs.ueraser_max_until(cfg.replace(ueraser_strength="max")) == 400
  assert specs.victim_spec(cfg).ueraser_draws == 5
  assert specs.victim_spec(EvalConfig()).ueraser_draws == 0
  with pytest.raises(SemJaxError, match="unknown ueraser_strength"):
    cfg.replace(ueraser_strength="huge").validate()
  with pytest.raises(SemJaxError, match="not with mixup"):
    cfg.replace(defenses="ueraser,mixup").validate()


def test_defense_options_count_only_where_their_defense_is_used():
  plain = EvalConfig().result_fields()
  assert not {"bdr_bits", "ueraser_draws", "standardize_std", "dvae_rate"} & set(plain)
  assert "optimizer" not in plain            # sgd: the identity runs had before the field
  assert EvalConfig(defenses="bdr").result_fields()["bdr_bits"] == 2
  assert EvalConfig(optimizer="adam").result_fields()["optimizer"] == "adam"


def test_a_victim_trains_on_bdr_standardised_images_and_is_tested_standardised(
    colour_npz, tmp_path, monkeypatch):
  seen = []
  real = E.evaluate_arrays
  monkeypatch.setattr(E, "evaluate_arrays", lambda ev, mesh, state, images, labels, *a:
                      seen.append(np.array(images)) or real(ev, mesh, state, images, labels, *a))
  cfg = tiny_eval_config(colour_npz, train_steps=2, eval_every=100,
                         defenses="bdr,standardize", standardize_std=30.0)
  E.evaluate_noise(cfg, None, str(tmp_path / "ev"), log=lambda *_: None,
                   devices=jax.devices()[:1])
  ds = load_npz(colour_npz)
  *tests_seen, train_seen = seen
  np.testing.assert_array_equal(train_seen,
                                D.standardize(D.bit_depth(ds.train_images, 2), 128.0, 30.0))
  np.testing.assert_array_equal(tests_seen[-1], D.standardize(ds.test_images, 128.0, 30.0))


@pytest.mark.slow
def test_a_victim_trains_with_ueraser_and_adversarial_training(npz_path, tmp_path):
  cfg = tiny_eval_config(npz_path, train_steps=2, eval_every=100, defenses="ueraser",
                         ueraser_draws=2, ueraser_strength="standard", adv_radius=2.0,
                         adv_steps=1, model="linear", model_width=0)
  res = E.evaluate_noise(cfg, None, str(tmp_path / "ev"), log=lambda *_: None,
                         devices=jax.devices()[:1])
  assert res["final"]["step"] == 2 and np.isfinite(res["final"]["test_loss"])
  assert res["config"]["defenses"] == "ueraser"


@pytest.mark.slow
def test_ueraser_phases_resolved_per_step_compute_the_conditional_step():
  from sem_jax.core.thief import victim as V
  net = create_model("linear", 3)
  tx = train.paper_sgd(0.1, 0.0, 0.0)
  spec = V.VictimSpec(augment_pad=-1, crop_size=0, attack=attacks.AttackSpec(0.0, 0, 0.0),
                      ueraser_draws=3, ueraser_max_until=2)
  root = jax.random.key_data(jax.random.key(0))
  rng = np.random.default_rng(0)
  batch = {"x": jnp.asarray(rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)),
           "y": jnp.array([0, 1, 2, 0]), "idx": jnp.arange(4)}
  state = train.init_state(net, tx, jax.random.key(1), (8, 8, 1))
  assert V.phase(spec, 1).ueraser_max_until == V.ALWAYS and V.phase(spec, 2).ueraser_max_until == 0
  conditional = jax.jit(lambda s, r, b: V.victim_step(net, tx, spec, s, r, b))
  resolved = {}                               # one jitted step per resolved phase

  def step_of(ph):
    if ph.ueraser_max_until not in resolved:
      resolved[ph.ueraser_max_until] = jax.jit(lambda s, r, b: V.victim_step(net, tx, ph, s, r, b))
    return resolved[ph.ueraser_max_until]
  losses = []
  for step in range(4):
    want, m_want = conditional(state, root, batch)
    got, m_got = step_of(V.phase(spec, step))(state, root, batch)
    np.testing.assert_allclose(float(m_got["loss"]), float(m_want["loss"]), rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 got.params, want.params)
    losses.append(float(m_got["loss"]))
    state = got
  one = step_of(V.phase(spec, 3))(state, root, batch)[1]["loss"]
  worst = step_of(V.phase(spec, 0))(state, root, batch)[1]["loss"]
  assert float(worst) > float(one)          # the max over 3 draws exceeds the first draw's loss
