"""ECLIPSE's parts: the cosine schedule against its closed form, the ancestral chain against the
DDPM posterior (an oracle denoiser returns the image exactly), the corruption compensation's
statistics, and the refusals."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sem_jax import core
from sem_jax.core.thief import eclipse as E
from sem_jax.errors import SemJaxError


def test_the_cosine_schedule_telescopes_to_its_closed_form():
  betas = E.cosine_betas(4000)
  abar = E.alphas_bar(betas)
  f = lambda t: math.cos((t / 4000 + 0.008) / 1.008 * math.pi / 2) ** 2
  for t in (0, 99, 1000, 3000):       # unclipped steps: ā_t = f(t + 1) / f(0)
    assert abar[t] == pytest.approx(f(t + 1) / f(0), rel=1e-9)
  assert betas.max() == pytest.approx(0.999) and (betas > 0).all()
  # the release's t* = 100: noise of std ≈ 0.05 of [-1, 1] (6.4 pixel levels)
  assert math.sqrt(1 - abar[99]) == pytest.approx(0.0499, abs=5e-4)


def test_spacing_visits_both_ends_of_the_noised_range():
  assert list(E.spacing(100, 100)) == list(range(100)) and list(E.spacing(100, 1)) == [99]
  s = E.spacing(100, 10)
  assert s[0] == 0 and s[-1] == 99 and len(s) == 10 and (np.diff(s) > 0).all()
  with pytest.raises(SemJaxError, match="denoising steps must be in"):
    E.spacing(100, 101)


@pytest.mark.parametrize("steps", [100, 10, 1])
def test_an_oracle_denoiser_brings_the_chain_back_to_the_image(steps):
  """With ε̂ the exact ε that relates x_t to x0, x̂0 = x0 at every step and the posterior
  mean chain (noise included) ends at x0: the sampler's algebra checked against DDPM's."""
  abar = jnp.asarray(E.alphas_bar(E.cosine_betas(4000)), jnp.float32)
  images = core.normalize(np.asarray(jax.random.randint(jax.random.key(0), (3, 8, 8, 1), 13, 243),
                                    np.uint8))
  x0 = 2.0 * images                  # the diffusion's units, [-1, 1]
  oracle = lambda x, t: (x - jnp.sqrt(abar[t])[:, None, None, None] * x0) / jnp.sqrt(
      1 - abar[t])[:, None, None, None]
  visits = [int(t) for t in E.spacing(100, steps)]
  x = E.diffuse(abar, images, visits[-1], jax.random.normal(jax.random.key(1), x0.shape))
  assert float(jnp.abs(x - x0).max()) > 0.05
  for i in reversed(range(len(visits))):
    x = E.reverse_step(oracle, abar, x, visits[i], visits[i - 1] if i else -1,
                       jax.random.normal(jax.random.key(2 + i), x0.shape))
  np.testing.assert_allclose(np.asarray(x), x0, atol=5e-3)
  np.testing.assert_allclose(np.asarray(E.to_normalised(x)), images, atol=3e-3)


def test_diffusion_and_training_take_normalised_images_and_refuse_others():
  abar = jnp.asarray(E.alphas_bar(E.cosine_betas(4000)), jnp.float32)
  u8 = np.full((2, 8, 8, 1), 200, np.uint8)
  eps = jnp.zeros((2, 8, 8, 1))
  # at t = 0 (ā ≈ 1) x_t is the normalised image doubled: 200 levels -> 2 (200/255 - 0.5)
  np.testing.assert_allclose(E.diffuse(abar, core.normalize(u8), 0, eps),
                             2 * (200 / 255 - 0.5), rtol=1e-4)
  with pytest.raises(SemJaxError, match="eclipse.diffuse takes normalised float images"):
    E.diffuse(abar, u8, 0, eps)
  with pytest.raises(SemJaxError, match=r"eclipse.diffuse takes images normalised to \[-0.5"):
    E.diffuse(abar, 2.0 * core.normalize(u8), 0, eps)        # already in [-1, 1]
  with pytest.raises(SemJaxError, match="eps has shape"):
    E.diffuse(abar, core.normalize(u8), 0, eps[:1])
  model = E.Denoiser(8)
  params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), jnp.zeros((1,), jnp.int32))
  tx = optax.adam(1e-3)
  params, opt, value = E.train_step(model, tx, 100, params["params"], tx.init(params["params"]),
                                    abar, core.normalize(u8), jax.random.key(1))
  assert np.isfinite(float(value))
  with pytest.raises(SemJaxError, match="eclipse.train_step takes normalised float images"):
    E.train_step(model, tx, 100, params, opt, abar, u8, jax.random.key(1))
  with pytest.raises(SemJaxError, match=r"eclipse.train_step takes one key for the batch .* "
                     r"got keys of shape \(2,\)"):
    E.train_step(model, tx, 100, params, opt, abar, core.normalize(u8),
                 core.per_sample(jax.random.key(1), np.arange(2)))
  with pytest.raises(SemJaxError, match="eclipse.train_step: expected PRNG keys"):
    E.train_step(model, tx, 100, params, opt, abar, core.normalize(u8), 7)
  with pytest.raises(SemJaxError, match="width must be a positive multiple of 8"):
    E.Denoiser(12)


def test_compensation_adds_five_percent_noise_in_whole_levels_and_greys_colour_images():
  n = 2000
  x = core.normalize(np.broadcast_to(np.array([168, 128, 88], np.uint8), (n, 4, 4, 3)).copy())
  keys = core.per_sample(jax.random.key(0), np.arange(n))
  out = np.asarray(E.compensate(x, keys, 0.4, 0.05))
  levels = (out + 0.5) * 255
  np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)   # whole levels
  assert levels.min() >= 0 and levels.max() <= 255
  d = levels - (np.asarray(x) + 0.5) * 255
  grey = np.abs(levels[..., 0] - levels[..., 2]).mean(axis=(1, 2)) < 40   # R and B pulled in
  assert abs(grey.mean() - 0.4) < 0.04
  colour = d[~grey]
  assert abs(colour.std() - 0.05 * 255) < 0.6 and abs(colour.mean() + 0.5) < 0.3   # truncation
  # one-channel images: no grayscale draw, only the noise
  g = np.asarray(E.compensate(x[..., :1], keys, 1.0, 0.0))
  np.testing.assert_array_equal(g, np.asarray(x[..., :1]))


def test_compensation_refuses_levels_for_a_fraction_and_one_key():
  x = core.normalize(np.zeros((2, 4, 4, 1), np.uint8))
  keys = core.per_sample(jax.random.key(0), np.arange(2))
  with pytest.raises(SemJaxError, match="noise_std=12.75 is above 1: it is a fraction"):
    E.compensate(x, keys, 0.4, 12.75)
  with pytest.raises(SemJaxError, match="needs one key per image"):
    E.compensate(x, jax.random.key(0), 0.4, 0.05)
  with pytest.raises(SemJaxError, match="takes normalised float images"):
    E.compensate(jnp.zeros((2, 4, 4, 1), jnp.uint8), keys, 0.4, 0.05)
