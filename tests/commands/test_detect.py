"""UDP's simple-network detector on toy sets where the answer is known, and the command on a
real run."""
import json

import jax
import numpy as np
import pytest

from sem_jax.core.thief import detect as UDP
from sem_jax.errors import SemJaxError


def _toy(n=300, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, classes, n)
  x = rng.integers(60, 200, (n, 6, 6, 1)).astype(np.uint8)   # labels carry no signal
  return x, y


def test_a_class_wise_shortcut_is_fitted_and_fails_on_clean_test_images():
  x, y = _toy()
  xt, yt = _toy(seed=1)
  shortcut = x.copy()
  shortcut[np.arange(len(y)), 0, y, 0] = 255          # one bright pixel per class
  key = jax.random.key(0)
  fit_s, test_s = UDP.fit(key, shortcut, y, 3, "linear", xt, yt, steps=200)
  fit_c, _ = UDP.fit(key, x, y, 3, "linear", xt, yt, steps=200)
  assert fit_s > 0.95 and fit_c < 0.9           # the shortcut is fitted, noise labels are not
  assert test_s < 0.5                           # and it teaches nothing about clean images


@pytest.mark.parametrize("kind", UDP.DETECTORS)
def test_published_vs_clean_is_chance_without_noise_and_high_with_it(kind):
  rng = np.random.default_rng(3)
  ramp = np.linspace(0, 40, 6)[None, :, None, None] + np.linspace(0, 20, 6)[None, None, :, None]
  x = (rng.integers(40, 160, (400, 1, 1, 1)) + ramp).astype(np.uint8)   # smooth images
  noisy = np.clip(x.astype(np.int16) + rng.choice([-40, 40], x.shape), 0, 255).astype(np.uint8)
  key = jax.random.key(1)
  assert UDP.split_detector(key, noisy, x, kind, steps=300) > 0.9
  assert abs(UDP.split_detector(key, x, x, kind, steps=300) - 0.5) < 0.1


def test_the_command_reports_and_never_overwrites(npz_path, tmp_path):
  from conftest import tiny_config
  from sem_jax.commands.detect import detect
  from sem_jax.commands.generate import generate_noise
  tiny_noise_run = str(tmp_path / "rnd")
  generate_noise(tiny_config(npz_path, method="random"), tiny_noise_run, log=lambda *_: None)
  out = tmp_path / "udp.json"
  res = detect(tiny_noise_run, str(out), steps=20, log=lambda *_: None)
  saved = json.loads(out.read_text())
  assert saved["detectors"].keys() == {"linear", "mlp"} and saved == json.loads(json.dumps(res))
  for v in saved["detectors"].values():
    assert 0 <= v["published_vs_clean"] <= 1 and 0 <= v["published_fit"] <= 1
  before = out.read_text()
  with pytest.raises(SemJaxError, match="refusing to overwrite"):
    detect(tiny_noise_run, str(out), steps=20, log=lambda *_: None)
  assert out.read_text() == before
