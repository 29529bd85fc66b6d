"""The path layer (sem_jax/fs.py): local paths, and gs:// URLs through etils.epath.

Offline there is no bucket: ``bucket`` runs epath's gs:// path class (URL parsing, joins,
backend dispatch) with its backend redirected to a temporary folder (epath.testing.mock_epath).
That proves every file sem_jax writes goes through epath with the URL intact (a stray os call
would create a local folder named 'gs:' instead). Not tested here: GCS itself, and orbax's
array data in a bucket (orbax writes it through tensorstore, so tests hand orbax the folder).
"""
import json
import os

import numpy as np
import pytest

from conftest import tiny_config
from sem_jax.files import atomic, fs
from sem_jax.run import artifacts, checkpoint
from sem_jax.errors import SemJaxError
from sem_jax.commands.export import export
from sem_jax.commands.generate import generate_noise
from sem_jax.run.artifacts import load_run
from sem_jax.commands.verify import verify

PREFIX = "gs://sem-test"
_FNS = ("open", "copy", "rename", "exists", "glob", "walk", "isdir", "listdir", "makedirs", "mkdir",
        "remove", "replace", "rmtree", "stat")


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """(url prefix, local folder that holds the bucket's objects); cwd is an empty folder."""
  from etils.epath import gpath, testing
  root = tmp_path / "bucket"
  root.mkdir()
  (tmp_path / "cwd").mkdir()
  monkeypatch.chdir(tmp_path / "cwd")
  calls = []

  def local(p):
    s = os.fspath(p)
    return s.replace(PREFIX, str(root), 1) if s.startswith(PREFIX) else s

  def redirect(orig, path, *args, **kwargs):
    calls.append(os.fspath(path))
    args = [local(a) if isinstance(a, (str, os.PathLike)) else a for a in args]
    return orig(local(path), *args, **kwargs)

  # epath sends gs:// to TensorFlow's GCS client whenever TensorFlow is installed; the mock
  # replaces the other backends only, so that choice is turned off here.
  monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)
  monkeypatch.setattr(checkpoint, "_orbax_path", local)
  with testing.mock_epath(**{name: redirect for name in _FNS}):
    yield PREFIX, root, calls
  assert os.listdir(tmp_path / "cwd") == [], "a URL became a local folder"


@pytest.mark.parametrize("remote", [False, True])
def test_fs_operations(remote, tmp_path, request):
  base = str(tmp_path / "local")
  if remote:
    base = request.getfixturevalue("bucket")[0] + "/ops"
  fs.makedirs(fs.join(base, "a", "b"))
  with fs.open(fs.join(base, "a", "b", "x.bin"), "wb") as f:
    f.write(b"12345")
  with fs.open(fs.join(base, "a", "y.txt"), "w") as f:
    f.write("hi")
  assert fs.isdir(fs.join(base, "a")) and fs.isfile(fs.join(base, "a", "y.txt"))
  assert sorted(fs.listdir(fs.join(base, "a"))) == ["b", "y.txt"]
  assert fs.getsize(fs.join(base, "a", "b", "x.bin")) == 5
  assert fs.stat_key(fs.join(base, "a", "y.txt"))[0] == 2
  walked = {(r[len(base):], tuple(sorted(d)), tuple(sorted(f))) for r, d, f in fs.walk(base)}
  assert walked == {("", ("a",), ()), ("/a", ("b",), ("y.txt",)), ("/a/b", (), ("x.bin",))}
  fs.move(fs.join(base, "a"), fs.join(base, "moved"))
  assert not fs.exists(fs.join(base, "a"))
  with fs.open(fs.join(base, "moved", "b", "x.bin"), "rb") as f:
    assert f.read() == b"12345"
  assert fs.abspath(base) == (base if remote else os.path.abspath(base))
  fs.rmtree(fs.join(base, "moved"))
  assert fs.listdir(base) == []


def test_generate_verify_export_in_a_bucket(bucket, npz_path, tmp_path, quiet):
  """A run whose workdir and export are gs:// URLs: the same noise, bit for bit, as a local
  run; resumed from its checkpoint; verified; exported (npz, png-flat) and verified again."""
  prefix, root, calls = bucket
  cfg = tiny_config(npz_path, train_steps=4, checkpoint_every=2, noise_format="shards")
  here = str(tmp_path / "here")
  generate_noise(cfg, here, log=quiet)
  there = prefix + "/runs/sem"
  generate_noise(cfg.replace(stop_after_step=2), there, log=quiet)
  assert os.path.isdir(root / "runs" / "sem" / "checkpoints" / "2")
  generate_noise(cfg, there, log=quiet)
  assert any(c.startswith(prefix + "/runs/sem/checkpoints/") for c in calls)   # integrity records
  a = artifacts.read_noise(here, json.load(open(os.path.join(here, "manifest.json"))))
  run = load_run(there)
  assert np.array_equal(np.asarray(run.noise[:]), a)
  metrics = (root / "runs" / "sem" / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(l)["step"] for l in metrics if "loss" in json.loads(l)][:4] == [1, 2, 3, 4]
  assert all(ok for ok, _ in verify(there))
  for fmt in ("npz", "png-flat"):
    out = f"{prefix}/exports/{fmt}"
    export(there, fmt, out, log=quiet)
    checks = verify(there, out)
    assert all(ok for ok, _ in checks), [m for ok, m in checks if not ok]
  assert (root / "exports" / "png-flat" / "labels.csv").exists()
  with pytest.raises(SemJaxError, match="not empty"):
    export(there, "npz", f"{prefix}/exports/npz", log=quiet)


def test_unknown_scheme_is_one_error(tmp_path):
  with pytest.raises(SemJaxError, match="ftp://x/y"):
    fs.exists("ftp://x/y")
