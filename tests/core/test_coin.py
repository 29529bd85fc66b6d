"""COIN (core.thief.defenses.coin): the release's bilinear resampling at displaced positions,
against scipy.ndimage.map_coordinates with the same displacements, and in a victim's step."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from conftest import tiny_eval_config
from sem_jax.core.thief import defenses as D
from sem_jax.errors import SemJaxError


def _reference(img01: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
  """The release's COIN_trans with given displacements: map_coordinates(order=1,
  mode='wrap') per channel, clipped, x 255, truncated (np.uint8)."""
  h, w, c = img01.shape
  x, y, z = np.meshgrid(np.arange(w), np.arange(h), np.arange(c))
  idx = (np.reshape(y + dy[..., None], (-1, 1)), np.reshape(x + dx[..., None], (-1, 1)),
         np.reshape(z, (-1, 1)))
  out = np.clip(map_coordinates(img01, idx, order=1, mode="wrap").reshape(img01.shape), 0, 1)
  return np.uint8(out * 255)


def test_coin_is_the_releases_resampling_of_each_image():
  rng = np.random.default_rng(0)
  x_u8 = rng.integers(0, 256, (3, 10, 12, 3)).astype(np.uint8)
  keys = jax.random.split(jax.random.key(5), 3)
  got = np.asarray(D.coin(jnp.asarray(x_u8 / 255.0 - 0.5, jnp.float32), keys, 2.0))
  got_u8 = np.rint((got + 0.5) * 255).astype(np.int32)
  for i, key in enumerate(keys):
    ky, kx = jax.random.split(key)            # the draws coin makes, replayed
    dy = np.asarray(jax.random.uniform(ky, (10, 12), minval=-2.0, maxval=2.0))
    dx = np.asarray(jax.random.uniform(kx, (10, 12), minval=-2.0, maxval=2.0))
    want = _reference(x_u8[i] / 255.0, dy, dx).astype(np.int32)
    assert np.abs(got_u8[i] - want).max() <= 1                  # float32 against float64
    assert (got_u8[i] == want).mean() > 0.97
    assert (want != x_u8[i]).mean() > 0.5                        # it moved most pixels
  assert np.allclose((got + 0.5) * 255, np.rint((got + 0.5) * 255), atol=1e-3)   # whole levels
  again = np.asarray(D.coin(jnp.asarray(x_u8 / 255.0 - 0.5, jnp.float32), keys, 2.0))
  assert np.array_equal(got, again)
  other = np.asarray(D.coin(jnp.asarray(x_u8 / 255.0 - 0.5, jnp.float32),
                            jax.random.split(jax.random.key(6), 3), 2.0))
  assert not np.array_equal(got, other)


def test_wrap_reads_coordinates_as_scipy_does():
  a = np.arange(5.0)
  c = np.array([-1.0, -0.5, 0.0, 2.25, 4.0, 4.25, 5.5])
  want = map_coordinates(a, [c], order=1, mode="wrap")
  got = np.interp(np.asarray(D._wrapped(jnp.asarray(c), 5)), np.arange(5), a)
  assert np.allclose(got, want)


def test_a_victim_trains_with_coin_and_pgd_at_and_refuses_a_bad_alpha(npz_path, tmp_path, quiet):
  from sem_jax.commands.evaluate import evaluate_noise
  from sem_jax.run import specs
  cfg = tiny_eval_config(npz_path, defenses="coin,cutout", adv_radius=4.0, train_steps=2,
                         eval_every=2, checkpoint_every=2)
  assert specs.victim_spec(cfg).coin_alpha == 2.0
  assert specs.victim_spec(cfg.replace(defenses="cutout")).coin_alpha == 0.0
  r = evaluate_noise(cfg, None, str(tmp_path / "v"), log=quiet, devices=jax.devices()[:1])
  assert np.isfinite(r["final"]["test_loss"])
  # coin_alpha counts for a victim with coin only
  assert "coin_alpha" not in cfg.replace(defenses="cutout").result_fields()
  assert cfg.result_fields()["coin_alpha"] == 2.0
  for bad in (0.0, -1.0, float("nan")):
    with pytest.raises(SemJaxError, match="coin_alpha must be finite and > 0"):
      cfg.replace(coin_alpha=bad).validate()
