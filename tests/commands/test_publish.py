"""Users' image folders in; protected datasets out; verify catches tampering."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, flip_byte, make_photos, tiny_config
from sem_jax.cli import main
from sem_jax.data.folder import load_folder
from sem_jax.errors import SemJaxError
from sem_jax.commands.export import export
from sem_jax.commands.visualize import visualize
from sem_jax.commands.generate import generate_noise
from sem_jax.commands.verify import verify

FOLDER_CFG = os.path.join(REPO, "configs/folder/sem.py")


@pytest.fixture
def photos(tmp_path):
  return make_photos(tmp_path / "photos")


def folder_config(path, **kw):
  return tiny_config("", dataset="folder", data_dir=str(path), image_size=16, batch_size=8,
                     **kw)


def test_folder_dataset_loads_resizes_and_splits(photos):
  ds = load_folder(str(photos), image_size=16)
  assert ds.train_images.shape[1:] == (16, 16, 3) and ds.num_classes == 3
  assert ds.class_names == ("cat", "dog", "owl")
  assert ds.num_train == 21 and len(ds.test_labels) == len(ds.holdout) == 3   # every photo
  assert (np.bincount(ds.test_labels) >= 1).all()
  assert (np.bincount(ds.train_labels[ds.fit_indices]) >= 1).all()
  assert all(f.split(os.sep)[0] == ds.class_names[l] for f, l in zip(ds.train_files, ds.train_labels))


def test_flat_folder_with_labels_csv(tmp_path):
  src = make_photos(tmp_path / "src", per_class=3, size=(16, 16))
  flat = tmp_path / "flat"
  flat.mkdir()
  lines = ["file,label"]
  for d in sorted(src.iterdir()):
    for f in sorted(d.iterdir()):
      (flat / f.name).write_bytes(f.read_bytes())
      lines.append(f"{f.name},{d.name}")
  (flat / "labels.csv").write_text("\n".join(lines) + "\n")
  ds = load_folder(str(flat), image_size=16)
  assert ds.class_names == ("cat", "dog", "owl") and ds.num_train == 9


@pytest.mark.parametrize("case,pattern", [
    ("empty", "holds no images"),
    ("text_file", r"not an image file .*notes\.txt"),
    ("corrupt", r"cannot read image .*broken\.png"),
    ("mixed_sizes", r"images differ in size .* set image_size"),
    ("lonely", r"class 'solo' .* has only 1 image"),
    ("clash", r"exported under one name: cat/cat_01\.JPG, cat/cat_01\.png; rename them"),
])
def test_bad_folders_give_clear_errors(case, pattern, tmp_path):
  root = tmp_path / "p"
  if case == "empty":
    root.mkdir()
  else:
    make_photos(root, per_class=3)
  if case == "text_file":
    (root / "cat" / "notes.txt").write_text("hello")
  if case == "corrupt":
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
  if case == "clash":   # cat_01.png exists: the same export name, compared without case
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(root / "cat" / "cat_01.JPG")
  if case == "lonely":
    (root / "solo").mkdir()
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(root / "solo" / "a.png")
  size = 0 if case == "mixed_sizes" else 16
  with pytest.raises(SemJaxError, match=pattern):
    load_folder(str(root), image_size=size)


def test_protect_a_photo_folder_end_to_end(photos, tmp_path, one_device, quiet, capsys):
  wd = str(tmp_path / "run")
  generate_noise(folder_config(photos), wd, devices=one_device, log=quiet)
  out = str(tmp_path / "png")
  manifest = export(wd, "png", out, log=quiet)
  ds = load_folder(str(photos), image_size=16)
  # the user's file names are kept (as .png), in their class folders
  names = sorted(manifest["files"])
  assert names == sorted(os.path.join(f.split(os.sep)[0],
                                      os.path.splitext(os.path.basename(f))[0] + ".png")
                         for f in ds.train_files)
  checks = verify(wd, out)
  assert all(ok for ok, _ in checks), checks
  assert main(["verify", "--noise", wd, "--export", out]) == 0
  assert "OK:" in capsys.readouterr().out
  # tamper with one byte of one exported image: verify fails naming that file
  victim = os.path.join(out, names[3])
  flip_byte(victim, os.path.getsize(victim) // 2, 0x01)
  assert main(["verify", "--noise", wd, "--export", out]) == 1
  text = capsys.readouterr().out
  assert f"FAIL  {victim}" in text and "FAILED" in text
  # a protected-image export into a non-empty directory is refused
  with pytest.raises(SemJaxError, match="not empty"):
    export(wd, "png", out, log=quiet)
  grid = str(tmp_path / "grid.png")
  visualize(wd, grid, classes=3, per_class=2, log=quiet)
  from sem_jax.commands.visualize import HEADER_H, LABEL_W
  with Image.open(grid) as im:
    assert im.size == (LABEL_W + 3 * 16 * 8, HEADER_H + 6 * 16 * 8)
    arr = np.asarray(im.convert("L"))
  # the header and the label column hold dark text on white
  assert arr[:HEADER_H, LABEL_W:].min() < 128 and arr[HEADER_H:, :LABEL_W].min() < 128
  assert np.median(arr[:HEADER_H]) == 255


def test_npz_export_and_noise_tampering(npz_path, tmp_path, one_device, quiet, capsys):
  wd = str(tmp_path / "run")
  generate_noise(tiny_config(npz_path, train_steps=2), wd, devices=one_device, log=quiet)
  out = str(tmp_path / "npz")
  assert main(["export", "--noise", wd, "--format", "npz", "--out", out]) == 0
  with np.load(os.path.join(out, "protected.npz"), allow_pickle=False) as z:
    noise = np.load(os.path.join(wd, "noise.npy"))
    from sem_jax.core.units import protect
    from sem_jax.data.sources import load_npz
    ds = load_npz(npz_path)
    np.testing.assert_array_equal(z["x_train"], protect(ds.train_images, noise))
    np.testing.assert_array_equal(z["x_test"], ds.test_images)
  assert all(ok for ok, _ in verify(wd, out))
  path = os.path.join(wd, "noise.npy")
  flip_byte(path, -5, 0x02)
  capsys.readouterr()
  assert main(["verify", "--noise", wd]) == 1
  assert f"FAIL  {path}: SHA-256 does NOT match the manifest (file altered)" in capsys.readouterr().out


def test_export_errors(npz_path, tmp_path, one_device, quiet, capsys):
  code = main(["export", "--noise", str(tmp_path / "missing"), "--format", "png", "--out",
               str(tmp_path / "o")])
  assert code == 2 and "noise directory not found" in capsys.readouterr().err
  wd = str(tmp_path / "run")
  generate_noise(tiny_config(npz_path, train_steps=1), wd, devices=one_device, log=quiet)
  # the dataset file changed under the run: the noise no longer fits it
  from conftest import synthetic_arrays
  np.savez(npz_path, **synthetic_arrays(n_train=40))
  code = main(["export", "--noise", wd, "--format", "png", "--out", str(tmp_path / "o2")])
  err = capsys.readouterr().err
  assert code == 2 and "noise shape (52, 16, 16, 1) does not match" in err


def test_a_killed_exports_staging_folder_is_removed_by_the_next_export(npz_path, tmp_path,
                                                                       one_device, quiet):
  """kill -9 during export leaves .NAME.export-PID beside the output; the next export to that
  folder (which holds its lock) removes it and says so, and the user's own dot-folders stay."""
  wd = str(tmp_path / "run")
  generate_noise(tiny_config(npz_path, train_steps=1), wd, devices=one_device, log=quiet)
  stale = tmp_path / ".published.export-4242"
  (stale / "0").mkdir(parents=True)
  (stale / "0" / "000000.png").write_bytes(b"half-written")
  mine = tmp_path / ".published.export-notes"           # not a staging folder: kept
  mine.mkdir()
  logs = []
  export(wd, "npy", str(tmp_path / "published"), log=logs.append)
  assert not stale.exists() and mine.exists()
  assert any(l.startswith(f"removed {stale}: the staging folder of an export that was killed")
             for l in logs), logs
  assert all(ok for ok, _ in verify(wd, str(tmp_path / "published")))
  assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".published.export")) \
      == [".published.export-notes"]


def test_cifar10_under_tfds_mock_data_generate_export_verify(tmp_path, one_device, quiet):
  """CIFAR-10 through tfds.data_source (no TensorFlow needed) with TFDS's mock records."""
  tfds = pytest.importorskip("tensorflow_datasets")
  cfg = tiny_config("", dataset="cifar10", data_dir="", batch_size=8, train_steps=2)
  wd, out = str(tmp_path / "run"), str(tmp_path / "png")
  with tfds.testing.mock_data(num_examples=24):
    m = generate_noise(cfg, wd, devices=one_device, log=quiet)
    assert m["dataset"]["image_shape"] == [32, 32, 3] and m["final_pass_regenerated"] == 24
    export(wd, "png", out, log=quiet)
    checks = verify(wd, out)
  assert all(ok for ok, _ in checks), checks
  assert len([f for _, _, fs in os.walk(out) for f in fs if f.endswith(".png")]) == 24


def test_tfds_export_is_readable_in_order_and_tamper_evident(npz_path, tmp_path, one_device,
                                                             quiet, capsys):
  """--format tfds writes an array_record TFDS dataset (TensorFlow needed to write, in a
  subprocess here); reading it back through tfds.data_source needs no TensorFlow."""
  import subprocess
  import sys
  from conftest import REPO
  from sem_jax.core.units import protect
  from sem_jax.data.sources import load_npz
  from sem_jax.commands.formats import read_tfds
  wd = str(tmp_path / "run")
  generate_noise(tiny_config(npz_path, train_steps=1), wd, devices=one_device, log=quiet)
  out = str(tmp_path / "tfds")
  env = {**os.environ, "XLA_FLAGS": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
  r = subprocess.run([sys.executable, os.path.join(REPO, "run.py"), "export", "--noise", wd,
                      "--format", "tfds", "--out", out], capture_output=True, text=True, env=env,
                     timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  ds = load_npz(npz_path)
  images, labels, index = read_tfds(out, "train")
  np.testing.assert_array_equal(index, np.arange(52))
  np.testing.assert_array_equal(images, protect(ds.train_images, np.load(os.path.join(wd, "noise.npy"))))
  np.testing.assert_array_equal(labels, ds.train_labels)
  test_images, test_labels, _ = read_tfds(out, "test")
  np.testing.assert_array_equal(test_images, ds.test_images)
  assert all(ok for ok, _ in verify(wd, out))
  record = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs
            if "train.array_record" in f][0]
  flip_byte(record, os.path.getsize(record) // 2, 0x10)
  capsys.readouterr()
  assert main(["verify", "--noise", wd, "--export", out]) == 1
  assert f"FAIL  {record}: SHA-256 does not match export_manifest.json (file altered)" in \
      capsys.readouterr().out


def test_sharded_noise_equals_single_file_and_is_verified(npz_path, tmp_path, quiet, capsys):
  """noise_format "shards" on 8 devices: one file per device's rows, the same table as noise.npy,
  read back shard by shard by export / evaluate / verify; a flipped byte names the shard."""
  import jax
  from sem_jax.files import atomic
  from sem_jax.run import artifacts
  from sem_jax.run.artifacts import load_run
  from sem_jax.data.sources import load_npz
  cfg = tiny_config(npz_path, train_steps=2)
  one, many = str(tmp_path / "npy"), str(tmp_path / "shards")
  generate_noise(cfg, one, devices=jax.devices(), log=quiet)
  m = generate_noise(cfg.replace(noise_format="shards"), many, devices=jax.devices(), log=quiet)
  # 52 rows padded to 64 rows over 8 devices: 8 rows per device, the last one empty of real rows
  assert [(s["start"], s["stop"]) for s in m["noise_shards"]] == [
      (i, min(i + 8, 52)) for i in range(0, 52, 8)]
  table = artifacts.read_noise(many, m)
  np.testing.assert_array_equal(table, np.load(os.path.join(one, "noise.npy")))
  assert m["noise_max_abs"] == int(np.abs(table.astype(int)).max())
  assert all(ok for ok, _ in verify(many))
  noise = load_run(many, load_npz(npz_path)).noise
  np.testing.assert_array_equal(noise, table)
  out = str(tmp_path / "png")
  assert main(["export", "--noise", many, "--format", "png", "--out", out]) == 0
  assert all(ok for ok, _ in verify(many, out))
  shard = os.path.join(many, m["noise_shards"][3]["file"])
  flip_byte(shard, -3, 0x01)
  capsys.readouterr()
  assert main(["verify", "--noise", many]) == 1
  assert f"FAIL  {shard}: SHA-256 does NOT match the manifest (file altered)" in capsys.readouterr().out
  with pytest.raises(SemJaxError, match="noise-0000000024-0000000032.npy does not match the SHA-256"):
    load_run(many, load_npz(npz_path))


class _FakeImagenet:
  """What ``tfds.data_source("imagenet2012", split=...)`` returns, for 160 seeded records:
  decoded uint8 images of random sizes and labels in 0..999 (TFDS's own mock_data decodes
  its random JPEGs with TensorFlow, which the test install leaves out)."""

  def __init__(self, split, n=160):
    rng = np.random.default_rng(0 if split == "train" else 1)
    self.labels = rng.integers(0, 1000, n)
    self.labels[:40] = rng.integers(0, 100, 40)          # enough rows of the first 100 classes
    self.sizes = rng.integers(20, 48, (n, 2))
    self.split = split

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    h, w = (int(v) for v in self.sizes[i])
    image = np.random.default_rng([i, len(self.split)]).integers(0, 256, (h, w, 3), np.uint8)
    return {"image": image, "label": int(self.labels[i])}


def test_imagenet_subset_generate_sharded_evaluate(tmp_path, quiet, monkeypatch):
  """imagenet_subset through tfds.data_source (a fake imagenet2012 source: random labels in
  0..999, random sizes): only labels < num_classes are kept, images resized to image_size, the
  model sees random-resized crops (train) and centre crops (test), the noise stays at
  image_size and is written in shards."""
  import jax
  tfds = pytest.importorskip("tensorflow_datasets")
  from sem_jax.run import artifacts
  from sem_jax.run.config import EvalConfig
  from sem_jax.data.sources import load_dataset
  from sem_jax.commands.evaluate import evaluate_noise
  sources = {"train": _FakeImagenet("train"), "validation": _FakeImagenet("validation")}
  opened = []

  def data_source(name, split, data_dir=None, decoders=None):
    opened.append((name, split))
    return sources[split]
  monkeypatch.setattr(tfds, "data_source", data_source)
  cfg = tiny_config("", dataset="imagenet_subset", data_dir="", num_classes=100, image_size=24,
                    crop_size=16, batch_size=8, train_steps=2, noise_format="shards")
  ds = load_dataset("imagenet_subset", "", 100, 24)
  assert set(opened) == {("imagenet2012", "train"), ("imagenet2012", "validation")}
  assert ds.train_images.shape[1:] == (24, 24, 3) and ds.train_images.dtype == np.uint8
  assert ds.train_labels.max() < 100 and ds.test_labels.max() < 100 and ds.num_classes == 100
  assert ds.num_train == int((sources["train"].labels < 100).sum())
  m = generate_noise(cfg, str(tmp_path / "run"), devices=jax.devices()[:4], log=quiet)
  assert m["noise_shape"] == [ds.num_train, 24, 24, 3]
  assert m["final_pass_regenerated"] == ds.num_train
  assert all(ok for ok, _ in verify(str(tmp_path / "run")))
  noise = artifacts.read_noise(str(tmp_path / "run"), m)
  assert np.abs(noise.astype(int)).max() <= 8 and (noise != 0).mean() > 0.5
  ev = EvalConfig(dataset="imagenet_subset", num_classes=100, image_size=24, crop_size=16,
                  model="small_cnn", model_width=4, batch_size=8, train_steps=2, eval_every=2,
                  log_every=1, checkpoint_every=2, unroll_loops=False)
  r = evaluate_noise(ev, str(tmp_path / "run"), str(tmp_path / "eval"),
                     devices=jax.devices()[:4], log=quiet)
  assert np.isfinite(r["final"]["test_loss"]) and r["num_protected"] == ds.num_train
  with pytest.raises(SemJaxError, match="crop_size 32 exceeds the 24x24 images"):
    generate_noise(cfg.replace(crop_size=32), str(tmp_path / "run2"), log=quiet)


def test_every_verify_check_can_fail(tmp_path, one_device, quiet):
  """Each check verify prints fails when its artifact is wrong, even where the tamperer
  re-signs the manifests: noise beyond ε, a changed dataset, a missing or an extra exported
  file, exported pixels that differ, an export of another run."""
  from conftest import synthetic_arrays
  from sem_jax.files import atomic
  from sem_jax.run import artifacts
  npz = tmp_path / "d.npz"
  np.savez(npz, **synthetic_arrays())
  wd = str(tmp_path / "run")
  generate_noise(tiny_config(str(npz), train_steps=1), wd, devices=one_device, log=quiet)

  def failures(export_dir=None):
    return [m for ok, m in verify(wd, export_dir) if not ok]

  assert failures() == []
  # where the noise was made, and whether this machine would regenerate it bit for bit
  from sem_jax.run import machine
  here = machine.describe()
  made = [m for _, m in verify(wd) if m.startswith("made on")]
  assert made == [f"made on {machine.line(here)}, 1 device(s); this machine computes the same "
                  "bits: the same config and seed regenerate this noise exactly on 1 device(s)"]
  man_path = os.path.join(wd, "manifest.json")
  man = atomic.read_json(man_path)
  atomic.write_json(man_path, {**man, "machine": {**here, "cpu_family": 6, "cpu_flags": ["avx2"]}})
  assert [m for _, m in verify(wd) if m.startswith("made on")][0].endswith(
      "another CPU or accelerator: a regeneration protects within the seed spread but is not "
      "this noise")
  atomic.write_json(man_path, man)
  # noise beyond ε, with noise.npy's SHA-256 re-signed in the manifest
  noise_path = os.path.join(wd, "noise.npy")
  good = np.load(noise_path)
  bad = good.copy()
  bad[3, 0, 0, 0] = 9
  man_path = os.path.join(wd, "manifest.json")
  man = atomic.read_json(man_path)

  def resign(arr):
    np.save(noise_path, arr)
    atomic.write_json(man_path, {**man, "noise_sha256": atomic.sha256_file(noise_path)})

  resign(bad)
  assert any("max |noise| = 9 levels > ε = 8" in m for m in failures())
  resign(good)
  assert failures() == []
  # the dataset changed since generation
  arrays = synthetic_arrays()
  arrays["x_train"][0] ^= 1
  np.savez(npz, **arrays)
  assert any("CHANGED since generation" in m for m in failures())
  np.savez(npz, **synthetic_arrays())
  # exports: a pixel changed under a re-signed export manifest; missing; extra; another run
  out = str(tmp_path / "png")
  export(wd, "png", out, log=quiet)
  emani_path = os.path.join(out, "export_manifest.json")
  emani = atomic.read_json(emani_path)
  rel = sorted(emani["files"])[5]
  from sem_jax.files.images import read_png, save_png as _save_png
  img = read_png(os.path.join(out, rel), 1).copy()
  img[0, 0, 0] ^= 4
  _save_png(os.path.join(out, rel), img)
  emani["files"][rel]["sha256"] = atomic.sha256_file(os.path.join(out, rel))
  atomic.write_json(emani_path, emani)
  assert any(f"{rel}: pixels differ" in m for m in failures(out))
  os.remove(os.path.join(out, rel))
  assert any(m.endswith(f"{rel}: missing") for m in failures(out))
  flat = str(tmp_path / "flat")
  export(wd, "png-flat", flat, log=quiet)
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(os.path.join(flat, "extra.png"))
  assert any("files no index accounts for: extra.png" in m for m in failures(flat))
  other = str(tmp_path / "other")
  generate_noise(tiny_config(str(npz), train_steps=1, seed=3), other, devices=one_device,
                 log=quiet)
  out2 = str(tmp_path / "other-npz")
  export(other, "npz", out2, log=quiet)
  assert any("exported from a different noise" in m for m in failures(out2))


def test_thirty_photos_run_on_the_folder_defaults(tmp_path, capsys):
  """30 photos (24 train after the 20 % holdout) under configs/folder/sem.py, whose batch is
  64: the batch adapts to the training set, says so, and the run is exported (thumbnails and
  full size), verified and evaluated without an eval config (fewer crafting steps than the
  defaults, for time)."""
  photos = make_photos(tmp_path / "photos", classes=("cat", "dog", "owl"), per_class=10,
                       size=(72, 90))
  wd, out = str(tmp_path / "run"), str(tmp_path / "published")
  assert main(["generate", "--config", FOLDER_CFG, f"--config.data_dir={photos}",
               "--config.train_steps=2", "--config.noise_steps=2", "--config.adv_steps=1",
               "--workdir", wd]) == 0
  assert "batch_size 64 exceeds the 24 training images: training on batches of 24" in (
      capsys.readouterr().out)
  manifest = json.load(open(os.path.join(wd, "manifest.json")))
  assert manifest["config"]["batch_size"] == 24 and manifest["dataset"]["num_train"] == 30
  assert main(["export", "--noise", wd, "--format", "png", "--out", out]) == 0
  assert main(["verify", "--noise", wd, "--export", out]) == 0
  # evaluate without a config: the dataset fields from the manifest, the victim by image size
  ev = str(tmp_path / "victim")
  capsys.readouterr()
  assert main(["evaluate", "--noise", wd, "--workdir", ev, "--config.train_steps=2",
               "--config.eval_every=2"]) == 0
  text = capsys.readouterr().out
  assert "victim: the small CNN for 64 px images on folder" in text, text
  assert "training on batches of 24" in text
  run = json.load(open(os.path.join(ev, "run_config.json")))["config"]
  assert run["data_dir"] == str(photos) and run["image_size"] == 64 and run["augment_pad"] == 8
  assert json.load(open(os.path.join(ev, "results.json")))["num_train_used"] == 24
  # full size: every photo at its own size, PNG pixel-exact, JPEG sources at quality 90
  full, jpg = str(tmp_path / "full"), str(tmp_path / "jpg")
  assert main(["export", "--noise", wd, "--format", "png", "--resolution", "original",
               "--out", full]) == 0
  assert main(["export", "--noise", wd, "--format", "png", "--resolution", "original",
               "--jpeg-quality", "90", "--out", jpg]) == 0
  assert "JPEG at quality 90 kept" in capsys.readouterr().out
  noise = np.load(os.path.join(wd, "noise.npy"))
  for out_dir in (full, jpg):
    em = json.load(open(os.path.join(out_dir, "export_manifest.json")))
    for rel, rec in em["files"].items():
      src = np.asarray(Image.open(photos / rec["source"]).convert("RGB"), np.int16)
      got = np.asarray(Image.open(os.path.join(out_dir, rel)).convert("RGB"), np.int16)
      assert got.shape == src.shape and tuple(rec["size"]) == src.shape[:2]
      assert rel.endswith(".jpg") == (out_dir == jpg and rec["source"].endswith(".jpg"))
      if rec["encoding"] == "png":
        assert np.abs(got - src).max() <= 8 and (got != src).any()
      else:
        assert 0.5 < rec["noise_kept"] <= 1.2
    vis = em["visibility"]
    assert 25 < vis["psnr_db_worst"] <= vis["psnr_db_mean"] < 60 and vis["ssim_worst"] > 0.5
    cats = sorted(r["index"] for r in em["files"].values() if r["label"] == 0)
    np.testing.assert_allclose(vis["class_mean_noise_levels"]["cat"],
                               noise[cats].astype(float).mean((0, 1, 2)), atol=1e-4)
    assert main(["verify", "--noise", wd, "--export", out_dir]) == 0
    assert "visibility PSNR mean" in capsys.readouterr().out
  # a full-size PNG changed in one pixel, its hash updated: the pixel check still fails
  em = json.load(open(os.path.join(full, "export_manifest.json")))
  rel = sorted(em["files"])[4]
  img = np.asarray(Image.open(os.path.join(full, rel))).copy()
  img[0, 0, 0] ^= 1
  Image.fromarray(img).save(os.path.join(full, rel))
  from sem_jax.files.atomic import sha256_file, write_json
  em["files"][rel]["sha256"] = sha256_file(os.path.join(full, rel))
  os.remove(os.path.join(full, "export_manifest.json"))
  write_json(os.path.join(full, "export_manifest.json"), em)
  assert main(["verify", "--noise", wd, "--export", full]) == 1
  assert f"{os.path.join(full, rel)}: pixels differ from clip(photo + resized noise)" in (
      capsys.readouterr().out)
