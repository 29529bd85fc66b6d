"""Interoperating with the PyTorch tools: CIFAR in the original files' order, the flat PNG and
NCHW array exports, import-noise (arrays and PNG folders) with its refusals, and folder
datasets whose every photo is protected and exported."""
import os

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import make_photos, tiny_config, tiny_eval_config
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic
from sem_jax.run import artifacts
from sem_jax.cli import main
from sem_jax.core.units import protect
from sem_jax.data.folder import load_folder
from sem_jax.data.sources import load_dataset, load_npz
from sem_jax.data.tfds import canonical_positions
from sem_jax.commands.evaluate import evaluate_noise, training_set
from sem_jax.commands.export import export
from sem_jax.files.images import read_png
from sem_jax.commands.generate import generate_noise
from sem_jax.commands.import_noise import import_noise
from sem_jax.run.artifacts import load_run
from sem_jax.commands.verify import verify


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """The tiny npz and a finished SEM run on it (52 images of 16x16x1, ε 8)."""
  from conftest import synthetic_arrays
  root = tmp_path_factory.mktemp("interop")
  npz = str(root / "tiny.npz")
  np.savez(npz, **synthetic_arrays())
  wd = str(root / "sem")
  generate_noise(tiny_config(npz, train_steps=2), wd, log=lambda *_: None,
                 devices=jax.devices()[:1])
  return {"npz": npz, "sem": wd, "root": root, "noise": np.load(os.path.join(wd, "noise.npy"))}


# ----------------------------------------------------------------------------- CIFAR order
def _shuffled_cifar(n_train=12, n_test=6, seed=3, ids=True):
  """A data_source mock: records in a shuffled order; record of original index k has every
  pixel = 7 k + 1 (mod 256) and label k mod 10; its id is '{split}_{k}'."""
  perm = {"train": np.random.default_rng(seed).permutation(n_train),
          "test": np.random.default_rng(seed + 1).permutation(n_test)}

  def source(self, split, **_):
    name = str(split).split("[")[0]
    return [{"id": (f"{name}_{k}" if ids else f"x{k}").encode(),
             "image": np.full((32, 32, 3), (7 * k + 1) % 256, np.uint8), "label": int(k % 10)}
            for k in perm[name]]
  return source


def test_cifar_rows_land_at_their_original_index(tmp_path, quiet, one_device):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(as_data_source_fn=_shuffled_cifar()):
    ds = load_dataset("cifar10")
    for k in range(12):
      assert (ds.train_images[k] == (7 * k + 1) % 256).all() and ds.train_labels[k] == k % 10
    for k in range(6):
      assert (ds.test_images[k] == (7 * k + 1) % 256).all()
    assert ds.order.startswith("canonical")
    m = generate_noise(tiny_config("", dataset="cifar10", batch_size=4, train_steps=1), str(
        tmp_path / "run"), log=quiet, devices=one_device)
  assert m["dataset"]["order"].startswith("canonical")
  with tfds.testing.mock_data(as_data_source_fn=_shuffled_cifar(ids=False)):
    assert load_dataset("cifar10").order.startswith("tfds")   # ids without an index: kept


def test_canonical_positions_need_a_permutation():
  assert canonical_positions([b"train_2", b"train_0", b"train_1"]).tolist() == [2, 0, 1]
  assert canonical_positions(["test_0", "test_0"]) is None          # a repeated index
  assert canonical_positions(["train_0", "train_5"]) is None        # out of range
  assert canonical_positions(["n01440764_10026.JPEG"]) is None     # not an index


# ----------------------------------------------------------------------------- exports
def test_flat_png_export_reads_back_in_index_order(run, tmp_path, quiet):
  ds = load_npz(run["npz"])
  published = protect(ds.train_images, run["noise"])
  out = tmp_path / "flat"
  export(run["sem"], "png-flat", str(out), log=quiet)
  for i in range(ds.num_train):      # the way ISS / APBench read it: {i}.png, i = 0..N-1
    np.testing.assert_array_equal(read_png(str(out / f"{i}.png"), 1), published[i])
  rows = (out / "labels.csv").read_text().splitlines()
  assert rows[0] == "file,label,index,class_name" and len(rows) == 53
  assert [int(r.split(",")[1]) for r in rows[1:]] == ds.train_labels.tolist()
  assert all(ok for ok, _ in verify(run["sem"], str(out)))
  # an extra image, then a missing one: verify names each
  Image.fromarray(published[0][..., 0]).save(out / "52.png")
  text = "\n".join(m for ok, m in verify(run["sem"], str(out)) if not ok)
  assert "files no index accounts for: 52.png" in text
  os.remove(out / "52.png")
  os.remove(out / "7.png")
  failed = [m for ok, m in verify(run["sem"], str(out)) if not ok]
  assert any(m.endswith("7.png: missing") for m in failed)
  assert any("NOT every training index exported" in m for m in failed)


def test_npy_export_is_nchw_in_dataset_order(run, tmp_path, quiet):
  ds = load_npz(run["npz"])
  out = tmp_path / "npy"
  assert main(["export", "--noise", run["sem"], "--format", "npy", "--out", str(out)]) == 0
  x = np.load(out / "protected_nchw.npy", allow_pickle=False)
  noise = np.load(out / "noise_nchw.npy", allow_pickle=False)
  assert x.shape == (52, 1, 16, 16) and x.dtype == np.uint8 and noise.dtype == np.int8
  np.testing.assert_array_equal(noise.transpose(0, 2, 3, 1), run["noise"])
  np.testing.assert_array_equal(x.transpose(0, 2, 3, 1), protect(ds.train_images, run["noise"]))
  np.testing.assert_array_equal(np.load(out / "labels.npy"), ds.train_labels)
  assert all(ok for ok, _ in verify(run["sem"], str(out)))
  # verify compares contents: a re-signed manifest does not hide a changed array
  np.save(out / "labels.npy", np.roll(ds.train_labels.astype(np.int64), 1))
  emani = atomic.read_json(str(out / "export_manifest.json"))
  emani["files"]["labels.npy"]["sha256"] = atomic.sha256_file(str(out / "labels.npy"))
  atomic.write_json(str(out / "export_manifest.json"), emani)
  assert any("labels.npy: differs" in m for ok, m in verify(run["sem"], str(out)) if not ok)


def test_verify_refuses_an_export_of_another_run(run, tmp_path, quiet):
  other = str(tmp_path / "other")
  generate_noise(tiny_config(run["npz"], train_steps=2, seed=5), other, log=quiet)
  out = str(tmp_path / "x")
  export(other, "npz", out, log=quiet)
  failed = [m for ok, m in verify(run["sem"], out) if not ok]
  assert any("exported from a different noise" in m for m in failed)


# ----------------------------------------------------------------------------- import
def test_import_round_trips_and_is_accepted_everywhere(run, tmp_path, quiet, capsys):
  ds = load_npz(run["npz"])
  out = tmp_path / "npy"
  export(run["sem"], "npy", str(out), log=quiet)
  cfg = ["--config.dataset=npz", f"--config.data_dir={run['npz']}", "--config.noise_radius=8"]
  a = str(tmp_path / "imp-levels")
  assert main(["import-noise", "--source", str(out / "noise_nchw.npy"), "--layout", "nchw",
               "--units", "levels", "--workdir", a, *cfg]) == 0
  np.testing.assert_array_equal(np.load(os.path.join(a, "noise.npy")), run["noise"])
  man = atomic.read_json(os.path.join(a, "manifest.json"))
  assert man["noise_sha256"] == atomic.read_json(os.path.join(run["sem"], "manifest.json"))[
      "noise_sha256"]                                      # the same bytes: export then import
  assert man["imported"]["sha256"] == atomic.sha256_file(str(out / "noise_nchw.npy"))
  # fractions of 255, NHWC, float32: the same noise
  frac = tmp_path / "frac.npy"
  np.save(frac, run["noise"].astype(np.float32) / 255.0)
  b = import_noise(tiny_config(run["npz"]), str(frac), str(tmp_path / "imp-frac"), "nhwc",
                   "fraction", log=quiet)
  assert b["noise_sha256"] == man["noise_sha256"]
  # a folder of protected PNGs: noise = image - clean, the published images exactly
  flat = tmp_path / "flat"
  export(run["sem"], "png-flat", str(flat), log=quiet)
  c = str(tmp_path / "imp-png")
  import_noise(tiny_config(run["npz"]), str(flat), c, log=quiet)
  published = protect(ds.train_images, run["noise"])
  np.testing.assert_array_equal(protect(ds.train_images, load_run(c).noise), published)
  # accepted by verify, export and evaluate like a generated run
  capsys.readouterr()
  assert main(["verify", "--noise", a]) == 0 and "imported from" in capsys.readouterr().out
  export(a, "npz", str(tmp_path / "re"), log=quiet)
  assert all(ok for ok, _ in verify(a, str(tmp_path / "re")))
  res = evaluate_noise(tiny_eval_config(run["npz"], train_steps=2), a, str(tmp_path / "ev"),
                       log=quiet)
  assert res["noise"]["method"] == "imported" and res["num_protected"] == 52


def _bad_npy(tmp_path, arr):
  path = tmp_path / "bad.npy"
  np.save(path, arr, allow_pickle=True)
  return str(path)


@pytest.mark.parametrize("case,pattern", [
    ("shape", r"shape \(52, 16, 16, 1\) does not match .*\(want \(52, 1, 16, 16\) in NCHW"),
    ("nan", "non-finite noise .* at index 3"),
    ("beyond", r"\|noise\| 9 levels at index 5 exceeds ε = 8"),
    ("object", "not a readable .npy array without pickle"),
    ("no_layout", "say the array's layout with --layout"),
    ("rows", r"shape \(51, 1, 16, 16\) does not match"),
])
def test_bad_array_imports_write_nothing(run, tmp_path, capsys, case, pattern):
  good = run["noise"].transpose(0, 3, 1, 2).astype(np.float32)
  arr = {"shape": run["noise"], "nan": good.copy(), "beyond": good.copy(),
         "object": np.array([{"a": 1}], dtype=object), "no_layout": good, "rows": good[:51]}[case]
  if case == "nan":
    arr[3, 0, 2, 2] = np.nan
  if case == "beyond":
    arr[5, 0, 1, 1] = 9
  wd = tmp_path / "out"
  layout = [] if case == "no_layout" else ["--layout", "nchw"]
  code = main(["import-noise", "--source", _bad_npy(tmp_path, arr), *layout, "--units", "levels",
               "--workdir", str(wd), "--config.dataset=npz", f"--config.data_dir={run['npz']}"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
  import re
  assert re.search(pattern, err[0]), err[0]
  assert not wd.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".import")]


@pytest.mark.parametrize("case,pattern", [
    ("missing", r"1 of 52 indices have no PNG \(first missing: 7.png\)"),
    ("extra", r"52.png: not an index 0..51"),
    ("size", r"7.png: image \(8, 8, 1\) does not match"),
])
def test_bad_png_folder_imports_write_nothing(run, tmp_path, capsys, case, pattern):
  flat = tmp_path / "flat"
  export(run["sem"], "png-flat", str(flat), log=lambda *_: None)
  if case == "missing":
    os.remove(flat / "7.png")
  elif case == "extra":
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(flat / "52.png")
  else:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(flat / "7.png")
  wd = tmp_path / "out"
  wd.mkdir()                           # an existing empty directory is fine, and stays empty
  code = main(["import-noise", "--source", str(flat), "--workdir", str(wd),
               "--config.dataset=npz", f"--config.data_dir={run['npz']}"])
  err = capsys.readouterr().err.strip().splitlines()
  import re
  assert code == 2 and len(err) == 1 and re.search(pattern, err[0]), err
  assert os.listdir(wd) == []


def test_import_never_overwrites(run, tmp_path, capsys):
  wd = tmp_path / "mine"
  wd.mkdir()
  (wd / "notes.txt").write_text("keep me")
  np.save(tmp_path / "n.npy", run["noise"])
  code = main(["import-noise", "--source", str(tmp_path / "n.npy"), "--layout", "nhwc",
               "--units", "levels", "--workdir", str(wd), "--config.dataset=npz",
               f"--config.data_dir={run['npz']}"])
  assert code == 2 and "exists and is not empty" in capsys.readouterr().err
  assert os.listdir(wd) == ["notes.txt"]


def test_efficacy_benchmark_takes_imported_noise(run, tmp_path, quiet):
  """Noise made elsewhere joins a finished study as a row (``noise_dir``); the rows already
  there are not retrained."""
  from sem_jax.suites.study import Experiment, StudyConfig, run_study
  np.save(tmp_path / "n.npy", run["noise"])
  imp = str(tmp_path / "imp")
  import_noise(tiny_config(run["npz"]), str(tmp_path / "n.npy"), imp, "nhwc", "levels", log=quiet)
  ev = tiny_eval_config(run["npz"], train_steps=2)
  cfg = StudyConfig(experiments=(Experiment("clean", "g", ev),), name="efficacy")
  wd = str(tmp_path / "eff")
  run_study(cfg, wd, log=quiet)
  clean = os.path.join(wd, "eval", "clean-ra0", "results.json")
  before = os.path.getmtime(clean)
  res = run_study(cfg.replace(experiments=cfg.experiments + (
      Experiment("theirs", "g", ev, noise_dir=imp),)), wd, log=quiet)   # a row added later
  assert [r["label"] for r in res["rows"]] == ["clean", "theirs"]
  assert "| theirs |" in open(os.path.join(wd, "efficacy.md")).read()
  assert os.path.getmtime(clean) == before


# ----------------------------------------------------------------------------- folders
def test_every_photo_of_a_folder_is_protected_and_exported(tmp_path, quiet):
  """120 photos in, 120 protected photos out under their own names; the held-out fifth
  measures the surrogate and the victims but is never fitted."""
  photos = make_photos(tmp_path / "photos", classes=("cat", "dog", "owl"), per_class=40,
                       size=(16, 16))
  ds = load_folder(str(photos), image_size=16)
  assert ds.num_train == 120 and len(ds.holdout) == 24 and len(ds.fit_indices) == 96
  assert not set(ds.holdout.tolist()) & set(ds.fit_indices.tolist())
  np.testing.assert_array_equal(ds.test_images, ds.train_images[ds.holdout])
  cfg = tiny_config("", dataset="folder", data_dir=str(photos), image_size=16, batch_size=8,
                    train_steps=2)
  wd, out = str(tmp_path / "run"), str(tmp_path / "png")
  m = generate_noise(cfg, wd, log=quiet)
  assert m["final_pass_regenerated"] == 120 and m["dataset"]["num_fit"] == 96
  noise = np.load(os.path.join(wd, "noise.npy"))
  assert (np.abs(noise[ds.holdout].astype(int)).reshape(24, -1).max(1) > 0).all()
  manifest = export(wd, "png", out, log=quiet)
  assert len(manifest["files"]) == 120
  assert sorted(manifest["files"]) == sorted(
      os.path.join(f.split(os.sep)[0], os.path.splitext(os.path.basename(f))[0] + ".png")
      for f in ds.train_files)
  assert all(ok for ok, _ in verify(wd, out))
  images, labels, used, n_prot = training_set(tiny_eval_config("", dataset="folder"), ds, noise)
  assert len(labels) == 96 and not set(used.tolist()) & set(ds.holdout.tolist())


# ----------------------------------------------------------------------------- APBench layouts
def _published(wd, npz):
  run_ = load_run(wd)
  return np.clip(np.load(npz)["x_train"].astype(int) + run_.noise.astype(int), 0, 255)


@pytest.mark.parametrize("method", ["sem", "ops"])
def test_apbench_layouts_round_trip_to_identical_published_images(method, run, tmp_path, quiet,
                                                                  one_device):
  """Our export, laid out as APBench's CIFAR folder (<poisons>/<ds>/data/<i>.png) and as its
  ImageNet-100 one (<class>/<i>.png), imports back to the same published images."""
  import shutil
  wd = run["sem"]
  cfg = tiny_config(run["npz"], train_steps=2)
  if method == "ops":
    cfg = tiny_config(run["npz"], method="ops")
    wd = str(tmp_path / "ops")
    generate_noise(cfg, wd, log=quiet, devices=one_device)
  flat = str(tmp_path / "flat")
  export(wd, "png-flat", flat, log=quiet)
  apbench = tmp_path / f"{method}_poisons" / "c10" / "data"
  apbench.mkdir(parents=True)
  labels = np.load(run["npz"])["y_train"]
  for f in os.listdir(flat):
    if f.endswith(".png"):
      shutil.copy(os.path.join(flat, f), apbench / f)
      k = tmp_path / "in100" / str(int(labels[int(f[:-4])]))
      k.mkdir(parents=True, exist_ok=True)
      shutil.copy(os.path.join(flat, f), k / f)
  want = _published(wd, run["npz"])
  for src, name in ((apbench.parent, "a"), (tmp_path / "in100", "b")):
    m = import_noise(cfg, str(src), str(tmp_path / name), log=quiet)
    assert m["budget"]["norm"] == ("l0" if method == "ops" else "linf")
    assert np.array_equal(_published(str(tmp_path / name), run["npz"]), want)
    assert all(ok for ok, _ in verify(str(tmp_path / name)))
  assert m["imported"]["layout"] == "class folders"
  wrong = tmp_path / "in100" / str((int(labels[0]) + 1) % 4)
  shutil.move(str(tmp_path / "in100" / str(int(labels[0])) / "0.png"), str(wrong / "0.png"))
  with pytest.raises(SemJaxError, match="not its folder's"):
    import_noise(cfg, str(tmp_path / "in100"), str(tmp_path / "c"), log=quiet)
  if method == "ops":   # the one-pixel poison is outside an L∞ 8 budget: refused as sem
    with pytest.raises(SemJaxError, match="exceeds"):
      import_noise(cfg.replace(method="sem"), str(apbench.parent), str(tmp_path / "d"),
                   log=quiet)
