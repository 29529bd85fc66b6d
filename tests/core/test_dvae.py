"""D-VAE purification: the KL term against its formula (float64) and a Monte Carlo estimate,
the rate bound's hinge, and the purified training set inside a real evaluate run."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_eval_config
from sem_jax.commands import evaluate as E
from sem_jax.core.thief import dvae
from sem_jax.data.sources import load_npz
from sem_jax.run.purify import purify


def test_kl_equals_the_gaussian_formula_and_a_monte_carlo_estimate():
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(3, 2, 2, 4))
  logvar = rng.normal(scale=0.5, size=(3, 2, 2, 4))
  want = np.array([sum(0.5 * (m * m + np.exp(v) - 1 - v) for m, v in zip(mu[i].ravel(),
                                                                         logvar[i].ravel()))
                   for i in range(3)])
  got = np.asarray(dvae.kl(jnp.asarray(mu, jnp.float32), jnp.asarray(logvar, jnp.float32)))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # E_q[log q(z) - log p(z)] for one unit, 400k samples
  m, v = 0.7, -0.4
  z = m + np.exp(v / 2) * rng.normal(size=400_000)
  logq = -0.5 * ((z - m) ** 2 / np.exp(v) + v + np.log(2 * np.pi))
  logp = -0.5 * (z ** 2 + np.log(2 * np.pi))
  one = float(dvae.kl(jnp.full((1, 1), m), jnp.full((1, 1), v))[0])
  assert abs(np.mean(logq - logp) - one) < 0.01


def test_the_rate_bound_is_a_hinge_on_kl():
  model = dvae.VAE(2)
  x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 1))
  params = model.init(jax.random.key(1), x)["params"]
  xh, mu, logvar = model.apply({"params": params}, x, None)
  recon = float(jnp.mean(jnp.sum((xh - x) ** 2, axis=(1, 2, 3))))
  units = mu[0].size
  over = dvae.kl(mu, logvar) / units
  loose = float(dvae.loss(params, model, x, None, float(over.max()) + 1.0))
  np.testing.assert_allclose(loose, recon, rtol=1e-5)            # under the bound: no penalty
  tight = float(dvae.loss(params, model, x, None, 0.0))
  np.testing.assert_allclose(tight, recon + float(jnp.mean(dvae.kl(mu, logvar))), rtol=1e-5)


@pytest.mark.slow
def test_purify_is_seeded_and_a_victim_trains_on_the_reconstructions(npz_path, tmp_path,
                                                                     monkeypatch):
  cfg = tiny_eval_config(npz_path, train_steps=2, eval_every=100, defenses="dvae",
                         dvae_steps=20, dvae_latent=2)
  ds = load_npz(npz_path)
  a = purify(ds.train_images, cfg, log=lambda *_: None)
  assert a.shape == ds.train_images.shape and a.dtype == np.uint8
  np.testing.assert_array_equal(a, purify(ds.train_images, cfg, log=lambda *_: None))
  assert not np.array_equal(a, purify(ds.train_images, cfg.replace(seed=1), log=lambda *_: None))
  seen = []
  real = E.evaluate_arrays
  monkeypatch.setattr(E, "evaluate_arrays", lambda ev, mesh, state, images, labels, *r:
                      seen.append(np.array(images)) or real(ev, mesh, state, images, labels, *r))
  E.evaluate_noise(cfg, None, str(tmp_path / "ev"), log=lambda *_: None,
                   devices=jax.devices()[:1])
  np.testing.assert_array_equal(seen[-1], a)                   # the training-accuracy pass
  np.testing.assert_array_equal(seen[0], ds.test_images)       # tested on clean images


@pytest.mark.slow
def test_purify_learns_dark_images_instead_of_collapsing_to_their_mean():
  # bright bars on black, like digits: a decoder that saturates returns the mean image
  rng = np.random.default_rng(0)
  x = np.zeros((256, 16, 16, 1), np.uint8)
  for i in range(256):
    r, c = rng.integers(2, 12, 2)
    x[i, r:r + 3, c:c + 1 + i % 4] = 255
  cfg = tiny_eval_config("unused.npz", dvae_steps=300, dvae_latent=4, dvae_lr=3e-3)
  out = purify(x, cfg, log=lambda *_: None).astype(np.float64)
  err = np.mean((out - x) ** 2)
  collapsed = np.mean((x.mean(0, keepdims=True) - x) ** 2)
  assert err < 0.5 * collapsed, (err, collapsed)


@pytest.mark.slow
def test_sigterm_during_purification_stops_the_victim_which_resumes_to_the_same_result(
    npz_path, tmp_path):
  """SIGTERM while the D-VAE trains: evaluate stops within a few D-VAE steps (no victim step
  taken, nothing written as finished); the same command then gives the uninterrupted result."""
  import os
  import signal
  cfg = tiny_eval_config(npz_path, train_steps=3, eval_every=100, defenses="dvae",
                         dvae_steps=40, dvae_latent=2)
  one = jax.devices()[:1]
  ref = E.evaluate_noise(cfg, None, str(tmp_path / "ref"), log=lambda *_: None, devices=one)
  lines = []

  def log(line):
    lines.append(line)
    if line.startswith("dvae: step 10/"):
      os.kill(os.getpid(), signal.SIGTERM)
  wd = str(tmp_path / "run")
  assert E.evaluate_noise(cfg, None, wd, log=log, devices=one) is None
  assert "dvae: stopped at step 16/40 (SIGTERM received)" in lines
  assert not any(l.startswith("evaluate: victim") for l in lines)
  assert not os.path.exists(os.path.join(wd, E.RESULTS_FILE))
  again = E.evaluate_noise(cfg, None, wd, log=lambda *_: None, devices=one)
  assert again["final"] == ref["final"]
