"""A full disk is one line naming the path and the free space; nothing half-written keeps a final
name, the last good checkpoint stays, and the same command resumes once there is room. The
ENOSPC is injected at each write site, so these run on any machine."""
import errno
import json
import os

import numpy as np
import pytest

from conftest import tiny_config
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic


def _full(*_, **__):
  raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("write", [
    lambda p: atomic.write_json(p, {"a": 1}),
    lambda p: atomic.write_text(p, "x" * 100),
    lambda p: atomic.save_npy(p, np.zeros((4, 4), np.int8)),
])
def test_a_full_disk_during_a_file_write_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch,
                                                                             write):
  path = str(tmp_path / "f")
  open(path, "w").write("before")
  monkeypatch.setattr(os, "fsync", _full)
  with pytest.raises(SemJaxError) as e:
    write(path)
  msg = str(e.value)
  assert "\n" not in msg and f"cannot write {path}: no space left on the device (" in msg
  assert "MiB free" in msg and "re-run the same command" in msg
  assert open(path).read() == "before" and os.listdir(tmp_path) == ["f"]   # no temporary left


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_run_resumes(npz_path, tmp_path,
                                                                     monkeypatch, capsys):
  """ENOSPC as orbax reports it (a ValueError carrying tensorstore's text) at the step-4 save:
  one error line, step 2 stays restorable, and the rerun ends with an uninterrupted run's noise."""
  from sem_jax.cli import main
  from sem_jax.commands.generate import generate_noise
  from sem_jax.run import checkpoint as C
  quiet = lambda *_: None
  cfg = tiny_config(npz_path, train_steps=6, checkpoint_every=2)
  ref = str(tmp_path / "ref")
  generate_noise(cfg, ref, log=quiet)
  wd = str(tmp_path / "full")
  real = C.Checkpoints.save

  def orbax_full(*_, **__):
    raise ValueError('RESOURCE_EXHAUSTED: Error writing "noise/0.0.0.0" in OCDBT database: '
                     'No space left on device')

  def save(self, step, state, meta):   # the real save, whose orbax write fails at step 4
    if step == 4:
      monkeypatch.setattr(self._mngr, "save", orbax_full)
    return real(self, step, state, meta)
  monkeypatch.setattr(C.Checkpoints, "save", save)
  with pytest.raises(SemJaxError) as e:
    generate_noise(cfg, wd, log=quiet)
  msg = str(e.value)
  assert "\n" not in msg and "no space left on the device" in msg
  assert "the last intact checkpoint stays" in msg and "/4" in msg
  assert not os.path.exists(os.path.join(wd, "manifest.json"))
  monkeypatch.setattr(C.Checkpoints, "save", real)
  logs = []
  generate_noise(cfg, wd, log=logs.append)
  assert any("resuming" in l and "step 2" in l for l in logs), logs
  assert open(os.path.join(wd, "noise.npy"), "rb").read() == \
      open(os.path.join(ref, "noise.npy"), "rb").read()


def _fail_atomic_writes(monkeypatch, match):
  """Every atomic write of a file whose name contains ``match`` fails as a full disk does,
  after part of the file reached its temporary name."""
  real = atomic._write_whole

  def write_whole(path, write):
    if match in os.path.basename(path):
      def partial(f):
        f.write(b"part of the file")
        _full()
      return real(path, partial)
    return real(path, write)
  monkeypatch.setattr(atomic, "_write_whole", write_whole)


class _FullAfter:
  """``open`` for metrics.jsonl whose appends fail (half a line written) from the n-th on."""

  def __init__(self, n):
    self.n, self.calls = n, 0

  def __call__(self, path, mode="r", *a, **k):
    f = open(path, mode, *a, **k)
    if "a" not in mode:
      return f
    self.calls += 1
    if self.calls < self.n:
      return f
    real_write = f.write

    def write(text):
      real_write(text[: len(text) // 2])
      f.flush()
      _full()
    f.write = write
    return f


@pytest.fixture(scope="module")
def reference_noise(tmp_path_factory):
  """The noise of an uninterrupted run of a config (once per config; every npz_path holds the
  same synthetic arrays)."""
  from sem_jax.commands.generate import generate_noise
  from sem_jax.run import artifacts
  done = {}

  def noise(cfg):
    key = json.dumps(cfg.replace(data_dir="").to_dict(), sort_keys=True)   # same arrays
    if key not in done:
      wd = str(tmp_path_factory.mktemp("ref"))
      done[key] = artifacts.read_noise(wd, generate_noise(cfg, wd, log=lambda *_: None))
    return done[key]
  return noise


@pytest.mark.parametrize("site,fmt", [("noise.npy", "npy"), ("noise-", "shards"),
                                      ("manifest.json", "npy"), ("metrics.jsonl", "npy")])
def test_a_full_disk_at_each_run_write_site_is_one_line_and_the_rerun_finishes(
    site, fmt, npz_path, tmp_path, monkeypatch, reference_noise):
  """ENOSPC injected at the noise table (one file or its shards), the manifest and the metrics:
  one line naming the file; no half-written file under its final name (metrics: no partial
  line); the same call then finishes with an uninterrupted run's noise, bit for bit."""
  from sem_jax.commands.generate import generate_noise
  from sem_jax.run import artifacts, metrics
  quiet = lambda *_: None
  cfg = tiny_config(npz_path, train_steps=2, checkpoint_every=2, noise_format=fmt)
  wd = str(tmp_path / "full")
  if site == "metrics.jsonl":
    monkeypatch.setattr(metrics, "open", _FullAfter(2), raising=False)
  else:
    _fail_atomic_writes(monkeypatch, site)
  with pytest.raises(SemJaxError) as e:
    generate_noise(cfg, wd, log=quiet)
  msg = str(e.value)
  assert "\n" not in msg and "no space left on the device" in msg and site in msg, msg
  assert not os.path.exists(os.path.join(wd, "manifest.json"))
  if site == "noise.npy":
    assert not os.path.exists(os.path.join(wd, "noise.npy"))
  if site == "noise-":
    assert all(open(os.path.join(wd, "noise", f), "rb").read(6) == b"\x93NUMPY"
               for f in os.listdir(os.path.join(wd, "noise")) if f.endswith(".npy"))
  if site == "metrics.jsonl":
    lines = open(os.path.join(wd, "metrics.jsonl")).read().splitlines()
    assert all(json.loads(l) for l in lines)
  monkeypatch.undo()
  man = generate_noise(cfg, wd, log=quiet)
  assert np.array_equal(artifacts.read_noise(wd, man), reference_noise(cfg))


def test_a_full_disk_during_an_export_leaves_the_folder_empty_and_the_rerun_exports(
    npz_path, tmp_path, monkeypatch):
  from sem_jax.commands.export import export
  from sem_jax.commands.generate import generate_noise
  from sem_jax.commands.verify import verify
  quiet = lambda *_: None
  wd = str(tmp_path / "run")
  generate_noise(tiny_config(npz_path, train_steps=2), wd, log=quiet)
  out = str(tmp_path / "published")
  _fail_atomic_writes(monkeypatch, "000003.png")
  with pytest.raises(SemJaxError) as e:
    export(wd, "png", out, log=quiet)
  assert "\n" not in str(e.value) and "000003.png: no space left on the device" in str(e.value)
  assert os.listdir(out) == [] and not [f for f in os.listdir(tmp_path) if ".export-" in f]
  monkeypatch.undo()
  export(wd, "png", out, log=quiet)
  assert all(ok for ok, _ in verify(wd, out))


def test_a_full_disk_while_preparing_a_folder_cache_is_one_line_and_the_rerun_prepares(
    tmp_path, monkeypatch):
  from conftest import make_photos
  from sem_jax.data import prepared
  from sem_jax.data.folder import load_folder
  photos = make_photos(tmp_path / "photos", per_class=3)
  cache = str(tmp_path / "cache")
  monkeypatch.setattr(prepared, "_reserve", _full)
  with pytest.raises(SemJaxError) as e:
    load_folder(str(photos), 16, cache=cache, log=lambda *_: None)
  msg = str(e.value)
  assert "\n" not in msg and "no space left on the device" in msg and "needed" in msg, msg
  assert not [d for d in os.listdir(cache) if ".partial" not in d]   # no final name
  monkeypatch.undo()
  ds = load_folder(str(photos), 16, cache=cache, log=lambda *_: None)
  assert ds.num_train == 9 and [d for d in os.listdir(cache) if ".partial" not in d]
