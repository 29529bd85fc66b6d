"""ECLIPSE inside a real evaluate run: the purified training set is seeded, drawn from clean test
images only, closer to the clean images than the noise it starts from, and the victim trains on
it with the compensation and PGD-AT together; its options count only where it is used."""
import jax
import numpy as np
import pytest

from conftest import tiny_eval_config
from sem_jax.commands import evaluate as EV
from sem_jax.data.sources import load_npz
from sem_jax.errors import SemJaxError
from sem_jax.run import specs
from sem_jax.run.purify import eclipse, eclipse_clean_rows

QUIET = lambda *_: None


def test_eclipse_purifies_seeded_and_a_victim_trains_on_it(npz_path, tmp_path, monkeypatch):
  cfg = tiny_eval_config(npz_path, train_steps=2, eval_every=100, defenses="eclipse,cutout",
                         adv_radius=4.0, eclipse_clean=8, eclipse_steps=12,
                         eclipse_denoise_steps=4)
  ds = load_npz(npz_path)
  rows = eclipse_clean_rows(cfg, len(ds.test_labels))
  assert len(rows) == 8 and len(set(rows)) == 8
  assert not np.array_equal(rows, eclipse_clean_rows(cfg.replace(seed=1), len(ds.test_labels)))
  clean = np.asarray(ds.test_images)[rows]
  a = eclipse(ds.train_images, clean, cfg, log=QUIET)
  assert a.shape == ds.train_images.shape and a.dtype == np.uint8
  np.testing.assert_array_equal(a, eclipse(ds.train_images, clean, cfg, log=QUIET))
  assert not np.array_equal(a, eclipse(ds.train_images, clean, cfg.replace(seed=1), log=QUIET))
  # noised to t* = 100 (std 6.4 levels) and partly denoised even by this tiny denoiser
  rms = np.sqrt(((a.astype(float) - ds.train_images) ** 2).mean())
  assert 0 < rms < 0.05 * 127.5 * 1.5
  assert specs.victim_spec(cfg).eclipse == (0.4, 0.05)
  assert specs.victim_spec(cfg.replace(defenses="cutout")).eclipse is None
  seen = []
  real = EV.evaluate_arrays
  monkeypatch.setattr(EV, "evaluate_arrays", lambda ev, mesh, state, images, labels, *r:
                      seen.append(np.array(images)) or real(ev, mesh, state, images, labels, *r))
  r = EV.evaluate_noise(cfg, None, str(tmp_path / "ev"), log=QUIET, devices=jax.devices()[:1])
  assert np.isfinite(r["final"]["test_loss"])
  np.testing.assert_array_equal(seen[-1], a)                   # trained on the purified set
  np.testing.assert_array_equal(seen[0], ds.test_images)       # tested on clean images
  assert cfg.result_fields()["eclipse_t"] == 100
  assert not any(k.startswith("eclipse") for k in cfg.replace(defenses="cutout").result_fields())


@pytest.mark.parametrize("change, message", [
    ({"eclipse_noise_std": 12.75}, "a fraction of \\[0, 1\\], not levels"),
    ({"eclipse_t": 5000}, "eclipse_t must be in \\[1, eclipse_schedule=4000\\]"),
    ({"eclipse_denoise_steps": 101}, "eclipse_denoise_steps must be in \\[1, eclipse_t=100\\]"),
    ({"eclipse_width": 12}, "eclipse_width must be a multiple of 8"),
])
def test_bad_eclipse_options_are_refused(npz_path, change, message):
  with pytest.raises(SemJaxError, match=message):
    tiny_eval_config(npz_path, defenses="eclipse", **change).validate()


def test_a_clean_set_larger_than_the_test_split_is_refused(npz_path):
  ds = load_npz(npz_path)
  cfg = tiny_eval_config(npz_path, defenses="eclipse", eclipse_clean=len(ds.test_labels) + 1)
  with pytest.raises(SemJaxError, match="more than the .* test images"):
    eclipse_clean_rows(cfg, len(ds.test_labels))
