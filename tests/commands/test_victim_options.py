"""evaluate's options do what they say inside real runs: preprocessing defenses touch only the
training images (grayscale also the test images), cutout and mixup / cutmix get their
configured size and α, λ ~ Beta(α, α), the mixed loss, L2 adversarial training takes L2 steps,
and the optimiser equals PyTorch's SGD (lr staircase, coupled weight decay, momentum)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_eval_config
from sem_jax.commands import evaluate as E
from sem_jax.core import attacks, train
from sem_jax.core.thief import defenses as D
from sem_jax.data.sources import load_npz
from sem_jax.run import build, specs


def _spy_run(npz, tmp_path, monkeypatch, **changes):
  """Run a real (2-step) evaluate; record what the evaluations saw and the defense arguments
  the jitted step traced with."""
  seen = {"eval_images": [], "cutout": [], "mix": []}
  real_eval, real_cutout = E.evaluate_arrays, D.cutout
  real_mixup, real_cutmix = D.mixup, D.cutmix

  def eval_spy(ev, mesh, state, images, labels, *a):
    seen["eval_images"].append(np.array(images))
    return real_eval(ev, mesh, state, images, labels, *a)

  def cutout_spy(x, keys, size):
    seen["cutout"].append(size)
    return real_cutout(x, keys, size)

  def mixup_spy(x, y, key, alpha):
    seen["mix"].append(("mixup", alpha))
    return real_mixup(x, y, key, alpha)

  def cutmix_spy(x, y, key, alpha):
    seen["mix"].append(("cutmix", alpha))
    return real_cutmix(x, y, key, alpha)

  monkeypatch.setattr(E, "evaluate_arrays", eval_spy)
  monkeypatch.setattr(D, "cutout", cutout_spy)
  monkeypatch.setattr(D, "mixup", mixup_spy)
  monkeypatch.setattr(D, "cutmix", cutmix_spy)
  cfg = tiny_eval_config(npz, train_steps=2, eval_every=100, **changes)
  E.evaluate_noise(cfg, None, str(tmp_path / "ev"), log=lambda *_: None,
                   devices=jax.devices()[:1])
  return cfg, seen


def test_filters_and_jpeg_touch_only_the_training_images(colour_npz, tmp_path, monkeypatch):
  cfg, seen = _spy_run(colour_npz, tmp_path, monkeypatch, defenses="gaussian,jpeg")
  ds = load_npz(colour_npz)
  *tests_seen, train_seen = seen["eval_images"]    # the test evaluations, then train accuracy
  for test_seen in tests_seen:
    np.testing.assert_array_equal(test_seen, ds.test_images)
  want = specs.preprocess(cfg)(ds.train_images)
  np.testing.assert_array_equal(train_seen, want)
  assert not np.array_equal(want, ds.train_images)


def test_grayscale_reaches_the_test_images(colour_npz, tmp_path, monkeypatch):
  _, seen = _spy_run(colour_npz, tmp_path, monkeypatch, defenses="grayscale")
  ds = load_npz(colour_npz)
  *tests_seen, train_seen = seen["eval_images"]
  test_seen = tests_seen[-1]
  for x in (test_seen, train_seen):
    assert (x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all()
  np.testing.assert_array_equal(test_seen, D.grayscale(ds.test_images))


@pytest.mark.parametrize("defense,size,alpha", [("cutout", 5, None), ("mixup", None, 0.3),
                                                ("cutmix", None, 2.0)])
def test_cutout_and_mixing_get_their_configured_parameters(defense, size, alpha, npz_path,
                                                           tmp_path, monkeypatch):
  changes = {"defenses": defense}
  if size:
    changes["cutout_size"] = size
  if alpha:
    changes[f"{defense}_alpha"] = alpha
  _, seen = _spy_run(npz_path, tmp_path, monkeypatch, **changes)
  if defense == "cutout":
    assert seen["cutout"] == [5] and seen["mix"] == []
  else:
    assert seen["mix"] == [(defense, alpha)] and seen["cutout"] == []


@pytest.mark.parametrize("fn,alpha", [(D.mixup, 1.0), (D.mixup, 0.2), (D.cutmix, 1.0)])
def test_lambda_follows_beta(fn, alpha):
  """λ over 4000 keys: mean 1/2 and variance 1 / (4 (2α + 1)) of Beta(α, α) (cutmix's λ is the
  kept area, so its box clipping pulls λ up: mean >= 1/2 there)."""
  x = jnp.zeros((4, 32, 32, 1))
  y = jnp.arange(4)
  lams = np.asarray(jax.vmap(lambda k: fn(x, y, k, alpha)[3])(
      jax.random.split(jax.random.key(0), 4000)))
  assert ((lams >= 0) & (lams <= 1)).all()
  var = 1 / (4 * (2 * alpha + 1))
  se = np.sqrt(var / 4000)
  if fn is D.mixup:
    assert abs(lams.mean() - 0.5) < 4 * se and abs(lams.var() - var) < 0.15 * var
  else:
    assert lams.mean() > 0.5 - 4 * se and lams.var() < var * 1.15


def test_mixed_loss_is_the_lambda_weighted_cross_entropy():
  from sem_jax.core.nets.models import create_model
  from sem_jax.run.config import EvalConfig
  model = create_model("linear", 4, 0)
  tx = build.optimizer(EvalConfig(learning_rate=0.1, weight_decay=0.0, momentum=0.0))
  state = train.init_state(model, tx, jax.random.key(0), (8, 8, 1))
  x = jax.random.normal(jax.random.key(1), (6, 8, 8, 1))
  y, y2 = jnp.array([0, 1, 2, 3, 0, 1]), jnp.array([3, 2, 1, 0, 3, 2])
  _, m = train.update(model, tx, state, x, y, y2, 0.3)
  logits = train.predict(model, state, x)
  want = 0.3 * attacks.ce(logits, y).mean() + 0.7 * attacks.ce(logits, y2).mean()
  np.testing.assert_allclose(float(m["loss"]), float(want), rtol=1e-5)


def test_l2_adversarial_training_takes_l2_steps():
  """ρa = 40 levels in L2 over a 16x16 image: every δ lies in the L2 ball, and is not an L∞
  sign step (which would put every pixel at ±radius)."""
  w = jax.random.normal(jax.random.key(0), (256, 4))
  logits_fn = lambda x: x.reshape(x.shape[0], -1) @ w
  x = jax.random.uniform(jax.random.key(1), (8, 16, 16, 1), minval=-0.4, maxval=0.4)
  y = jnp.arange(8) % 4
  keys = jax.random.split(jax.random.key(2), 8)
  spec = attacks.AttackSpec(40.0, 5, 16.0, "l2")
  delta = np.asarray(spec(logits_fn, x, y, keys) - x).reshape(8, -1)
  l2 = np.linalg.norm(delta, axis=1)
  assert (l2 <= 40 / 255 + 1e-5).all() and (l2 > 0.5 * 40 / 255).all()
  assert np.abs(delta).max() < 0.5 * 40 / 255      # an L∞ attack would reach 40/255 per pixel
  lin = attacks.AttackSpec(4.0, 5, 1.0, "linf")
  d_inf = np.asarray(lin(logits_fn, x, y, keys) - x)
  assert np.abs(d_inf).max() <= 4 / 255 + 1e-6


def test_optimizer_equals_pytorch_sgd_on_a_toy_problem():
  """PyTorch's SGD(lr, momentum, weight_decay) with a StepLR staircase, written out in float64:
  g <- ∇ + wd p; buf <- m buf + g (buf = g at the first step); p <- p - lr_t buf, with
  lr_t = lr γ^⌊t / every⌋ for update t = 0, 1, ..."""
  from sem_jax.run.config import EvalConfig
  cfg = EvalConfig(learning_rate=0.1, momentum=0.9, weight_decay=5e-4, lr_decay_every=3,
                   lr_decay_factor=0.1)
  tx = build.optimizer(cfg)
  a = np.array([[2.0, 0.5], [0.5, 1.0]])
  grad = lambda p: a @ p - np.array([1.0, -2.0])       # ∇ of a quadratic
  p = np.array([3.0, -1.0])
  ref, buf = p.copy(), None
  params = jnp.asarray(p, jnp.float32)
  opt = tx.init(params)
  for t in range(8):
    g = grad(ref) + cfg.weight_decay * ref
    buf = g.copy() if buf is None else cfg.momentum * buf + g
    ref = ref - cfg.learning_rate * cfg.lr_decay_factor ** (t // cfg.lr_decay_every) * buf
    updates, opt = tx.update(jnp.asarray(grad(np.asarray(params, np.float64)), jnp.float32),
                             opt, params)
    params = params + updates
    np.testing.assert_allclose(np.asarray(params), ref, rtol=1e-5, atol=1e-6)
