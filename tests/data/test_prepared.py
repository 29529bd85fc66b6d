"""Large datasets (issue 12): the prepared cache, per-host row reading, bounded-memory export /
verify / evaluate, and checkpoint integrity records per process."""
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from sem_jax.data import folder, prepared, rows as R, sources as datasets
from sem_jax.files import atomic
from sem_jax.run import artifacts
from sem_jax.data.dataset import fingerprint
from sem_jax.errors import SemJaxError

from conftest import REPO, free_port, subprocess_env


def _folder(root, classes=3, per_class=7, size=20, seed=0):
  from PIL import Image
  rng = np.random.default_rng(seed)
  for c in range(classes):
    os.makedirs(os.path.join(root, f"c{c}"), exist_ok=True)
    for i in range(per_class):
      img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
      Image.fromarray(img).save(os.path.join(root, f"c{c}", f"{i:03d}.png"))
  return str(root)


def _same(a, b):
  assert np.array_equal(a.train_images, b.train_images)
  assert np.array_equal(a.test_images, b.test_images)
  assert np.array_equal(a.train_labels, b.train_labels)
  assert np.array_equal(a.holdout, b.holdout)
  assert (a.class_names, a.train_files, a.num_classes) == (b.class_names, b.train_files,
                                                            b.num_classes)
  assert fingerprint(a) == fingerprint(b)


def test_a_prepared_folder_equals_decoding_and_reopens_memory_mapped(tmp_path, monkeypatch):
  root = _folder(tmp_path / "img")
  off = folder.load_folder(root, 16, cache="off", log=lambda _: None)
  lines = []
  first = folder.load_folder(root, 16, cache=str(tmp_path / "cache"), log=lines.append)
  assert "preparing folder once" in lines[0]
  _same(off, first)
  assert first.digest == fingerprint(off)["sha256"]   # stored, not recomputed on open
  reads = []
  real = folder.read_image
  monkeypatch.setattr(folder, "read_image", lambda *a: reads.append(a) or real(*a))
  again = folder.load_folder(root, 16, cache=str(tmp_path / "cache"), log=lines.append)
  _same(off, again)
  assert len(reads) == 1   # the source's first image (its shape); no row is decoded again
  base = again.train_images
  while not isinstance(base, np.memmap) and getattr(base, "base", None) is not None:
    base = base.base
  assert isinstance(base, np.memmap) and not again.train_images.flags.writeable


def _array_source(x, y, xt, yt, decoded, fail_after=None, identity=None):
  def decode(split, idx):
    if fail_after is not None and len(decoded) >= fail_after:
      raise KeyboardInterrupt("killed while preparing")
    decoded.append((split, idx.tolist()))
    return (x if split == "train" else xt)[idx]
  return prepared.Source(name="synthetic", key={"name": "synthetic", "size": x.shape[1]},
                         identity=identity or {"version": 1},
                         load_labels=lambda: {"train": y, "test": yt},
                         image_shape=x.shape[1:], num_classes=4, decode=decode)


def test_an_interrupted_preparation_resumes_where_it_stopped(tmp_path):
  rng = np.random.default_rng(1)
  x = rng.integers(0, 256, (37, 8, 8, 3), dtype=np.uint8)
  xt = rng.integers(0, 256, (9, 8, 8, 3), dtype=np.uint8)
  y, yt = np.arange(37) % 4, np.arange(9) % 4
  cache = str(tmp_path / "cache")
  decoded = []
  with pytest.raises(KeyboardInterrupt):
    prepared.load(_array_source(x, y, xt, yt, decoded, fail_after=3), cache, lambda _: None, block=5)
  assert [len(i) for _, i in decoded] == [5, 5, 5]
  src = _array_source(x, y, xt, yt, [])
  d = prepared.cache_dir(cache, src)
  assert not os.path.exists(d)   # no reader ever opens a half-written cache
  partial = d + prepared.PARTIAL + prepared.digest(src.identity)[:16]
  meta = atomic.read_json(os.path.join(partial, prepared.META))
  assert meta["done"] == {"train": 15, "test": 0} and not meta["complete"]
  again, lines = [], []
  ds = prepared.load(_array_source(x, y, xt, yt, again), cache, lines.append, block=5)
  assert "resuming the preparation" in lines[0]
  assert again[0] == ("train", list(range(15, 20)))     # nothing before row 15 is decoded again
  assert sum(len(i) for s, i in again if s == "train") == 37 - 15
  assert np.array_equal(ds.train_images, x) and np.array_equal(ds.test_images, xt)
  assert ds.digest == atomic.sha256_arrays(x, y.astype(np.int32))


def test_a_cache_of_changed_contents_is_prepared_again_and_replaced(tmp_path):
  """A photo edited after preparation: the next run decodes the new contents under a temporary
  name and replaces the old copy (never reusing stale pixels, never refusing); a preparation of
  older contents left by an interrupted run is removed."""
  from PIL import Image
  root = _folder(tmp_path / "img")
  cache = str(tmp_path / "cache")
  quiet = lambda _: None
  before = folder.load_folder(root, 16, cache=cache, log=quiet)
  (d,) = os.listdir(cache)
  os.makedirs(os.path.join(cache, d + prepared.PARTIAL + "0" * 16))   # an abandoned one
  Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(os.path.join(root, "c1", "003.png"))
  lines = []
  after = folder.load_folder(root, 16, cache=cache, log=lines.append)
  assert any("changed since it was prepared" in l for l in lines)
  assert os.listdir(cache) == [d]
  _same(after, folder.load_folder(root, 16, cache="off", log=quiet))
  assert fingerprint(after) != fingerprint(before)
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (8, 4, 4, 1), dtype=np.uint8)
  prepared.load(_array_source(x, np.arange(8) % 4, x, np.arange(8) % 4, []), cache, quiet)
  decoded = []
  other = _array_source(255 - x, np.arange(8) % 4, x, np.arange(8) % 4, decoded,
                        identity={"version": 2})
  ds = prepared.load(other, cache, quiet)
  assert decoded and np.array_equal(ds.train_images, 255 - x)
  assert prepared.cache_root("off") is None


def test_flipped_bytes_in_the_cache_are_refused_then_prepared_anew(tmp_path):
  """Bytes changed in the cached training images (same size: bit rot, an edit, a second
  writer) are found when the cache is opened, before anything reads them: one error naming
  the cache; the next load prepares it again from the source photos."""
  from conftest import flip_byte
  root = _folder(tmp_path / "img")
  cache = str(tmp_path / "cache")
  quiet = lambda _: None
  clean = folder.load_folder(root, 16, cache="off", log=quiet)
  folder.load_folder(root, 16, cache=cache, log=quiet)
  (d,) = os.listdir(cache)
  images = os.path.join(cache, d, "train_images.npy")
  for pos in range(-16 * 16 * 3, -16 * 16 * 3 + 192):   # 192 bytes of the last image
    flip_byte(images, pos, 0x5A)
  with pytest.raises(SemJaxError, match=r"prepared cache .*no longer match the SHA-256 .* run "
                                        r"the same command again"):
    folder.load_folder(root, 16, cache=cache, log=quiet)
  lines = []
  again = folder.load_folder(root, 16, cache=cache, log=lines.append)
  assert any(l.startswith("preparing") for l in lines), lines
  _same(again, clean)


def test_export_and_verify_refuse_a_flipped_cache(tmp_path, monkeypatch):
  """Through the commands: a folder run's cache flipped after generate is neither exported nor
  vouched for by verify; the next export, from the re-prepared cache, equals the photos."""
  from conftest import flip_byte, tiny_config
  from sem_jax.cli import main
  from sem_jax.commands.generate import generate_noise
  monkeypatch.setenv("SEM_JAX_DATA_CACHE", str(tmp_path / "cache"))
  root = _folder(tmp_path / "img")
  wd = str(tmp_path / "run")
  cfg = tiny_config("", dataset="folder", data_dir=root, image_size=16, train_steps=1)
  generate_noise(cfg, wd, log=lambda _: None)
  (d,) = os.listdir(tmp_path / "cache")
  images = str(tmp_path / "cache" / d / "train_images.npy")
  flip = lambda: [flip_byte(images, pos, 0xFF) for pos in range(-64, 0)]
  flip()
  assert main(["verify", "--noise", wd]) == 2
  assert main(["export", "--noise", wd, "--format", "npy", "--out", str(tmp_path / "o")]) == 0
  assert main(["verify", "--noise", wd, "--export", str(tmp_path / "o")]) == 0   # prepared anew
  published = np.load(tmp_path / "o" / "protected_nchw.npy").transpose(0, 2, 3, 1)
  clean = folder.load_folder(root, 16, cache="off", log=lambda _: None)
  noise = np.load(os.path.join(wd, "noise.npy")).astype(int)
  assert np.array_equal(published, np.clip(clean.train_images.astype(int) + noise, 0, 255))
  flip()
  assert main(["export", "--noise", wd, "--format", "npy", "--out", str(tmp_path / "o2")]) == 2
  assert not os.path.exists(tmp_path / "o2")


_ROWS_SCRIPT = r"""
import json, os, sys
import jax
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2,
                           process_id=int(sys.argv[2]))
import numpy as np
from sem_jax.run import sharding
from sem_jax.data.order import batch_indices

class Recording:
  def __init__(self, table):
    self.table, self.read = table, []
  def __getitem__(self, idx):
    self.read.append(np.asarray(idx).tolist())
    return self.table[idx]

images = Recording(np.load(sys.argv[3], mmap_mode="r"))
labels = np.zeros(64, np.int32)
mesh = sharding.make_mesh()
for step in range(3):
  batch = sharding.read_batch(mesh, batch_indices(0, step, 64, 16), images, labels)
  assert batch["x"].shape == (16, 4, 4, 1)
json.dump(images.read, open(sys.argv[4], "w"))
"""


def test_two_processes_of_two_devices_read_disjoint_rows_of_the_cache(tmp_path):
  """Each process reads (from the memory-mapped table) exactly the rows its two devices
  hold: the first or the second half of every global batch, never the other's."""
  from sem_jax.data.order import batch_indices
  table = tmp_path / "images.npy"
  np.save(table, np.arange(64 * 16, dtype=np.uint8).reshape(64, 4, 4, 1))
  script = tmp_path / "rows.py"
  script.write_text(_ROWS_SCRIPT)
  port = free_port()
  outs = [str(tmp_path / f"read{p}.json") for p in (0, 1)]
  procs = [subprocess.Popen([sys.executable, str(script), f"127.0.0.1:{port}", str(p), str(table),
                             outs[p]], env={**subprocess_env(2), "PYTHONPATH": REPO},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for p in (0, 1)]
  logs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], logs
  read = [json.load(open(o)) for o in outs]
  for step in range(3):
    want = batch_indices(0, step, 64, 16)
    assert read[0][step] == want[:8].tolist() and read[1][step] == want[8:].tolist()
    assert not set(read[0][step]) & set(read[1][step])


def _big_run(tmp_path, n=4096, size=32):
  """A finished (imported) noise run on an npz-free, memory-mapped dataset of n colour images."""
  from sem_jax.run.config import GenerateConfig
  from sem_jax.commands.import_noise import import_noise
  rng = np.random.default_rng(3)
  x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
  src = _array_source(x, np.arange(n) % 4, x[:64], np.arange(64) % 4, [])
  ds = prepared.load(src, str(tmp_path / "cache"), lambda _: None)
  noise = rng.integers(-8, 9, x.shape).astype(np.int8)
  np.save(tmp_path / "noise.npy", noise)
  cfg = GenerateConfig(dataset="npz", noise_radius=8.0)
  import_noise(cfg, str(tmp_path / "noise.npy"), str(tmp_path / "run"), "nhwc", "levels", dataset=ds,
               log=lambda _: None)
  return ds, x, noise


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_export_and_verify_hold_one_block_not_the_table(fmt, tmp_path, monkeypatch):
  """With the dataset and the noise memory-mapped, exporting and verifying a 12.6 MB
  training set allocates under 30 % of it (traced Python and numpy memory: a few 96-row
  blocks and the 1 MiB read buffers of file hashing), and the export still equals
  clip(image + noise)."""
  from sem_jax.commands import export as E, formats as F, verify as V
  from sem_jax.run import artifacts as M
  ds, x, noise = _big_run(tmp_path)
  monkeypatch.setattr(M, "dataset_for", lambda cfg: ds)
  monkeypatch.setattr(V, "dataset_for", lambda cfg: ds)
  monkeypatch.setattr(R, "CHUNK", 96)
  table = x.nbytes
  tracemalloc.start()
  E.export(str(tmp_path / "run"), fmt, str(tmp_path / "out"), log=lambda _: None)
  export_peak = tracemalloc.get_traced_memory()[1]
  tracemalloc.reset_peak()
  checks = V.verify(str(tmp_path / "run"), str(tmp_path / "out"))
  verify_peak = tracemalloc.get_traced_memory()[1]
  tracemalloc.stop()
  assert all(ok for ok, _ in checks), V.report(checks)
  assert export_peak < 0.3 * table and verify_peak < 0.3 * table, (export_peak, verify_peak, table)
  published = np.clip(x.astype(int) + noise, 0, 255).astype(np.uint8)
  if fmt == "npy":
    got = np.load(tmp_path / "out" / "protected_nchw.npy")
    assert np.array_equal(got, published.transpose(0, 3, 1, 2))
  else:
    with np.load(tmp_path / "out" / "protected.npz") as z:
      assert np.array_equal(z["x_train"], published) and np.array_equal(z["index"], np.arange(len(x)))


def test_a_lazy_victim_training_set_equals_the_materialised_one(tmp_path):
  """evaluate's training set computed per read (protected subset, holdout removed, median
  filter and grayscale) equals the one computed once into memory."""
  from sem_jax.commands.evaluate import training_set
  from conftest import tiny_eval_config
  root = _folder(tmp_path / "img", classes=3, per_class=9, size=16)
  ds = datasets.load_folder(root, 0, cache=str(tmp_path / "cache"), log=lambda _: None)
  noise = np.random.default_rng(0).integers(-8, 9, ds.train_images.shape).astype(np.int8)
  cfg = tiny_eval_config("", dataset="folder", protected_fraction=0.5,
                         defenses="median,grayscale")
  whole, labels, used, n_prot = training_set(cfg, ds, noise)
  lazy, labels2, used2, n_prot2 = training_set(cfg, ds, noise, materialize_bytes=0)
  assert isinstance(lazy, R.Subset) and isinstance(whole, np.ndarray)
  assert whole.shape == lazy.shape == (len(used), 16, 16, 3)
  assert (whole[..., :1] == whole).all()   # grayscale: luma in every channel
  assert np.array_equal(whole, lazy[:]) and np.array_equal(whole[[5, 0, 5]], lazy[[5, 0, 5]])
  assert np.array_equal(labels, labels2) and np.array_equal(used, used2) and n_prot == n_prot2 > 0


def test_each_process_records_and_checks_the_files_it_wrote(tmp_path):
  """Checkpoint integrity on several hosts: process i hashes only ocdbt.process_i/...
  (process 0 also the rest); a step lacks integrity until every process's record exists;
  damage in one process's files is found by that process's check."""
  from sem_jax.run.checkpoint import verify_step_dir, write_integrity, _owner
  d = tmp_path / "6"
  for rel, data in {"state/_METADATA": b"m", "state/ocdbt.process_0/d/a": b"x" * 100,
                    "state/ocdbt.process_1/d/b": b"y" * 100, "meta/metadata": b"{}"}.items():
    (d / rel).parent.mkdir(parents=True, exist_ok=True)
    (d / rel).write_bytes(data)
  assert [_owner(r) for r in ("state/_METADATA", "state/ocdbt.process_1/d/b")] == [0, 1]
  write_integrity(str(d), 6, 0, 2)
  rec0 = json.load(open(d / "sem_jax_integrity.json"))
  assert rec0["processes"] == 2 and "state/ocdbt.process_1/d/b" not in rec0["files"]
  assert "process 1" in verify_step_dir(str(d))
  write_integrity(str(d), 6, 1, 2)
  assert list(json.load(open(d / "sem_jax_integrity.1.json"))["files"]) == ["state/ocdbt.process_1/d/b"]
  assert verify_step_dir(str(d)) is None
  (d / "state/ocdbt.process_1/d/b").write_bytes(b"z" * 100)
  assert verify_step_dir(str(d), owner=0) is None
  assert "altered file" in verify_step_dir(str(d), owner=1) and "altered" in verify_step_dir(str(d))
  assert verify_step_dir(str(d), owner=2) is None   # a third reader process has no files here
