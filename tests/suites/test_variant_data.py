"""tools/variant_data.py, the protection study's dataset variants: seeded (the same files bit
for bit), the shapes and contents the study describes, and never overwriting a file."""
import hashlib
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools"))
import variant_data  # noqa: E402
from sem_jax.data.sources import load_dataset  # noqa: E402

NAMES = ("photos_grid", "photos_rand", "digits32", "photos64", "photos_grey", "photos_greynorm")


def _digests(d):
  out = {}
  for n in NAMES:
    with np.load(os.path.join(d, f"{n}.npz"), allow_pickle=False) as z:
      out[n] = {k: hashlib.sha256(z[k].tobytes()).hexdigest() for k in z.files}
  return out


def test_variants_are_seeded_describe_their_data_and_are_never_overwritten(tmp_path):
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  variant_data.main(a)
  variant_data.main(b)
  assert _digests(a) == _digests(b)
  grid, rand = (np.load(os.path.join(a, f"photos_{k}.npz")) for k in ("grid", "rand"))
  assert grid["x_train"].shape == rand["x_train"].shape == (320, 32, 32, 3)
  assert np.bincount(grid["y_train"]).tolist() == [40] * 8
  assert (grid["x_test"] == rand["x_test"]).all()
  # tiles are drawn without replacement: no tile repeats
  flat = grid["x_train"].reshape(320, -1)
  assert len({r.tobytes() for r in flat}) == 320
  digits, d32 = load_dataset("sklearn_digits"), np.load(os.path.join(a, "digits32.npz"))
  content = digits.train_images[:, 4:12, 4:12]
  assert (d32["x_train"][:, 8:24, 8:24][:, ::2, ::2] == content).all()
  assert d32["x_train"][:, :8].max() == 0 and (d32["y_train"] == digits.train_labels).all()
  photos, p64 = load_dataset("skimage_photos"), np.load(os.path.join(a, "photos64.npz"))
  assert (p64["x_test"][:, 1::2, ::2] == photos.test_images).all()
  grey, norm = (np.load(os.path.join(a, f"photos_{k}.npz")) for k in ("grey", "greynorm"))
  assert grey["x_train"].shape == norm["x_train"].shape == (1600, 32, 32, 1)
  want = np.round(photos.train_images.astype(np.float64).mean(-1, keepdims=True))
  assert (grey["x_train"] == want).all() and (grey["y_train"] == photos.train_labels).all()
  # every patch standardised to mean 128, sd 40 (up to rounding, where nothing was clipped)
  x = norm["x_test"].astype(np.float64)
  unclipped = (x.min((1, 2, 3)) > 0) & (x.max((1, 2, 3)) < 255)
  assert unclipped.mean() > 0.3
  assert np.abs(x.mean((1, 2, 3))[unclipped] - 128).max() < 0.5
  assert np.abs(x.std((1, 2, 3))[unclipped] - 40).max() < 0.5
  # the same ordering of grey levels within a patch as the grey patch it came from
  g = grey["x_test"][unclipped].reshape(unclipped.sum(), -1).astype(np.int64)
  n = norm["x_test"][unclipped].reshape(unclipped.sum(), -1).astype(np.int64)
  assert (np.sign(np.diff(g, axis=1)) * np.sign(np.diff(n, axis=1)) >= 0).all()
  before = os.stat(os.path.join(a, "digits32.npz")).st_mtime_ns
  os.remove(os.path.join(a, "photos64.npz"))
  variant_data.main(a)      # an existing file is kept; a missing one is written again
  assert os.stat(os.path.join(a, "digits32.npz")).st_mtime_ns == before
  assert _digests(a) == _digests(b)


def test_photo_cues_features_and_probe_see_level_statistics_and_nothing_else():
  import photo_cues
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (6, 8, 8, 3)).astype(np.uint8)
  h = photo_cues.features(x, "histogram").reshape(6, 3, 8)
  assert np.allclose(h.sum(-1), 1.0)
  assert np.allclose(h[:, 1, 0], (x[..., 1] < 32).mean((1, 2)))
  assert np.allclose(photo_cues.features(x, "mean+std")[:, :3], x.mean((1, 2)))
  # a class given by brightness alone: the mean probe finds it; shape-only classes it cannot
  y = np.repeat(np.arange(4), 40)
  base = rng.integers(60, 196, (160, 8, 8, 1)).astype(np.float64)
  bright = np.clip(base + (y * 20 - 30)[:, None, None, None], 0, 255)
  assert photo_cues.probe(bright[::2], y[::2], bright[1::2], y[1::2], "mean") > 0.9
  shape = base.copy()                       # the class is where a bright pixel sits
  shape[np.arange(160), y, y, 0] = 255
  shape[np.arange(160), 7 - y, 7 - y, 0] = 0
  assert photo_cues.probe(shape[::2], y[::2], shape[1::2], y[1::2], "histogram") < 0.5


def test_photo_cues_reads_a_users_npz_and_refuses_bad_arguments(tmp_path, capsys):
  import photo_cues
  rng = np.random.default_rng(1)
  y = np.repeat(np.arange(2), 30)
  x = np.clip(rng.integers(80, 176, (60, 8, 8, 3)) + (y * 60 - 30)[:, None, None, None],
              0, 255).astype(np.uint8)
  path = str(tmp_path / "mine.npz")
  np.savez(path, x_train=x[::2], y_train=y[::2], x_test=x[1::2], y_test=y[1::2])
  photo_cues.main(["npz", path])
  out = capsys.readouterr().out.splitlines()
  assert out[-1].startswith(f"| {path} (2 classes, chance 50.0) | 100.0 |")
  with pytest.raises(SystemExit, match="usage"):
    photo_cues.main(["cifar10", "x"])
