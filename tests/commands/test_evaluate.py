"""run.py evaluate, the TAP and random generators, and the efficacy benchmark, on tiny data."""
import json
import os

import numpy as np
import pytest

from conftest import (REPO, flip_byte, synthetic_arrays, tiny_config, tiny_eval_config,
                      write_any_config_file)
from sem_jax.files import atomic
from sem_jax.run import artifacts
from sem_jax.cli import main
from sem_jax.core.units import protect
from sem_jax.data.sources import load_dataset
from sem_jax.errors import SemJaxError
from sem_jax.commands.evaluate import evaluate_noise, training_set
from sem_jax.commands.generate import generate_noise
from sem_jax.data.order import protected_indices
from sem_jax.run.victim import RESULTS_FILE, load_victim


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """The tiny npz, a finished SEM run on it, and a clean standard victim (TAP's model)."""
  root = tmp_path_factory.mktemp("evaldata")
  npz = str(root / "tiny.npz")
  np.savez(npz, **synthetic_arrays())
  quiet = lambda *_: None
  sem = str(root / "sem")
  generate_noise(tiny_config(npz, train_steps=2), sem, log=quiet)
  clean = str(root / "clean")
  evaluate_noise(tiny_eval_config(npz, train_steps=24, learning_rate=0.2), None, clean, log=quiet)
  return {"npz": npz, "sem": sem, "clean": clean, "root": root}


def _params(workdir):
  import jax
  _, state, _, _ = load_victim(workdir)
  return jax.tree.map(np.asarray, state.params)


def test_results_json_curve_and_plot(data):
  r = atomic.read_json(os.path.join(data["clean"], RESULTS_FILE))
  assert r["noise"]["method"] == "clean" and r["seed"] == 0
  assert [c["step"] for c in r["curve"]] == list(range(3, 25, 3))
  f = r["final"]
  assert 0 <= f["test_accuracy"] <= 1 and np.isfinite(f["test_loss"])
  assert len(f["per_class_test_accuracy"]) == 4
  # overall accuracy is the count-weighted mean of the per-class accuracies (20 test images)
  ds = load_dataset("npz", data["npz"])
  counts = np.bincount(ds.test_labels, minlength=4)
  assert np.isclose(np.dot(counts, f["per_class_test_accuracy"]) / counts.sum(), f["test_accuracy"])
  assert r["curve"][-1]["test_accuracy"] == f["test_accuracy"]
  assert 0 <= f["train_accuracy"] <= 1 and r["wall_time_s"] > 0
  with open(os.path.join(data["clean"], "accuracy.png"), "rb") as fh:
    assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
  lines = open(os.path.join(data["clean"], "metrics.jsonl")).read().splitlines()
  assert any(json.loads(l).get("event") == "eval" for l in lines)


def test_resume_is_bit_identical(data, tmp_path):
  cfg = tiny_eval_config(data["npz"], adv_radius=4.0, defenses="cutout,mixup", checkpoint_every=2)
  quiet = lambda *_: None
  full = str(tmp_path / "full")
  evaluate_noise(cfg, data["sem"], full, log=quiet)
  part = str(tmp_path / "part")
  assert evaluate_noise(cfg.replace(stop_after_step=4), data["sem"], part, log=quiet) is None
  assert evaluate_noise(cfg, data["sem"], part, log=quiet) is not None
  a, b = (atomic.read_json(os.path.join(d, RESULTS_FILE)) for d in (full, part))
  assert a["final"] == b["final"] and a["curve"] == b["curve"]
  import jax
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, _params(full), _params(part))))


def test_protected_subset_and_control(data):
  ds = load_dataset("npz", data["npz"])
  noise = artifacts.load_noise(os.path.join(data["sem"], artifacts.NOISE_FILE))
  idx = protected_indices(0, 52, 0.4)
  assert len(idx) == 21 and len(set(idx.tolist())) == 21
  assert np.array_equal(idx, protected_indices(0, 52, 0.4))
  assert not np.array_equal(idx, protected_indices(1, 52, 0.4))
  cfg = tiny_eval_config(data["npz"], protected_fraction=0.4)
  images, labels, used, n_prot = training_set(cfg, ds, noise)
  assert n_prot == 21 and len(labels) == 52
  want = ds.train_images.copy()
  want[idx] = protect(ds.train_images[idx], noise[idx])
  assert np.array_equal(images, want)
  control, labels_c, used_c, n_c = training_set(cfg.replace(unprotected_only=True), ds, noise)
  assert n_c == 0 and len(used_c) == 31 and not set(used_c) & set(idx.tolist())
  assert np.array_equal(control, ds.train_images[used_c])
  assert np.array_equal(labels_c, ds.train_labels[used_c])
  full, _, _, n_full = training_set(cfg.replace(protected_fraction=1.0), ds, noise)
  assert n_full == 52 and np.array_equal(full, protect(ds.train_images, noise))


@pytest.mark.parametrize("changes", [
    dict(defenses="mean,grayscale,jpeg,cutmix", adv_radius=2.0),
    dict(defenses="gaussian,median,bilateral", adv_radius=40.0, adv_norm="l2"),
    dict(protected_fraction=0.5, unprotected_only=True, model="linear", model_width=0),
])
def test_evaluate_options_run(data, tmp_path, changes):
  """Each combination trains to a finite loss, is recorded in results.json, and changes what
  the victim learns: its parameters differ from the same 3 steps without the options (the
  linear victim: from the same model on all protected rows)."""
  quiet = lambda *_: None
  r = evaluate_noise(tiny_eval_config(data["npz"], train_steps=3, **changes), data["sem"],
                     str(tmp_path / "w"), log=quiet)
  assert np.isfinite(r["final"]["test_loss"])
  for k, v in changes.items():
    assert r["config"][k] == v, k
  plain = {k: v for k, v in changes.items() if k in ("model", "model_width")}
  evaluate_noise(tiny_eval_config(data["npz"], train_steps=3, **plain), data["sem"],
                 str(tmp_path / "plain"), log=quiet)
  a, b = _params(str(tmp_path / "w")), _params(str(tmp_path / "plain"))
  import jax
  assert any(jax.tree.leaves(jax.tree.map(lambda u, v: not np.allclose(u, v), a, b)))
  if changes.get("unprotected_only"):
    assert r["num_train_used"] == 26 and r["num_protected"] == 0


def test_random_and_tap_noise(data, tmp_path):
  quiet = lambda *_: None
  rnd = generate_noise(tiny_config(data["npz"], method="random"), str(tmp_path / "rnd"), log=quiet)
  noise = artifacts.load_noise(str(tmp_path / "rnd" / artifacts.NOISE_FILE))
  assert rnd["final_pass_regenerated"] == 52 and np.abs(noise).max() == 8
  hist = np.bincount(noise.ravel().astype(int) + 8, minlength=17)
  assert hist.min() > 0 and hist.max() < 3 * hist[1:-1].mean()  # all 17 levels, roughly uniform
  again = str(tmp_path / "rnd2")
  generate_noise(tiny_config(data["npz"], method="random"), again, log=quiet)
  assert atomic.read_json(os.path.join(again, "manifest.json"))["noise_sha256"] == rnd["noise_sha256"]

  # from δ = 0, so that the descent shows on this barely trained model (test_noise checks
  # the default uniform start)
  cfg = tiny_config(data["npz"], method="tap", tap_model=data["clean"], noise_steps=8,
                    noise_step_size=2.0, num_samples=1, augment=False, tap_start="zero")
  tap = generate_noise(cfg, str(tmp_path / "tap"), log=quiet)
  tnoise = artifacts.load_noise(str(tmp_path / "tap" / artifacts.NOISE_FILE))
  assert tap["final_pass_regenerated"] == 52 and np.abs(tnoise).max() <= 8
  # TAP descends the CE of the target class (y + 1) mod C on the fixed model
  from sem_jax.core import attacks, train
  from sem_jax.core.units import normalize
  model, state, _, _ = load_victim(data["clean"])
  ds = load_dataset("npz", data["npz"])
  target = (ds.train_labels + 1) % 4
  ce = lambda x: float(attacks.ce(train.predict(model, state, x), target).mean())
  assert ce(normalize(protect(ds.train_images, tnoise))) < ce(normalize(ds.train_images)) - 0.01
  # a victim changes the TAP run's identity: a different model is a different run
  other = str(tmp_path / "clean2")
  evaluate_noise(tiny_eval_config(data["npz"], seed=1), None, other, log=quiet)
  with pytest.raises(SemJaxError, match="different config or dataset"):
    generate_noise(cfg.replace(tap_model=other), str(tmp_path / "tap"), log=quiet)


def test_efficacy_benchmark_end_to_end(data, tmp_path):
  """The efficacy benchmark as a study: clean, random, TAP and SEM rows at ρa 0 and 2, a table,
  a plot, and a re-run that retrains nothing."""
  from sem_jax.suites.study import plot_path
  npz = data["npz"]
  cfg_file = write_any_config_file(
      tmp_path / "eff.py",
      "StudyConfig(experiments=(Experiment('clean', 'g', ev, R),) + tuple("
      "Experiment(m, 'g', ev, R, generate=g) for m, g in gens.items()), name='efficacy')",
      "import sys\nsys.path.insert(0, %r)\nfrom conftest import tiny_config, tiny_eval_config\n"
      "from sem_jax.suites.study import Experiment, StudyConfig\n"
      "ev, R = tiny_eval_config(%r, train_steps=3), (0.0, 2.0)\n"
      "gens = {m: tiny_config(%r, method=m, train_steps=2, tap_model='x' if m == 'tap' else '')"
      " for m in ('random', 'tap', 'sem')}\n" % (os.path.join(REPO, "tests"), npz, npz))
  wd = str(tmp_path / "eff")
  assert main(["study", "--config", cfg_file, "--workdir", wd]) == 0
  res = atomic.read_json(os.path.join(wd, "efficacy.json"))
  rows = {r["label"]: r for r in res["rows"]}
  assert set(rows) == {"clean", "random", "tap", "sem"} and res["complete"]
  assert set(rows["sem"]["accuracy"]) == {"0", "2"}
  md = open(os.path.join(wd, "efficacy.md")).read()
  for m in ("| clean |", "| random |", "| tap |", "| sem |"):
    assert m in md
  assert f"{100 * rows['sem']['accuracy']['2']:.1f}" in md
  assert os.path.exists(plot_path(wd, "efficacy", "g"))
  # re-running continues (everything is finished): same numbers, nothing retrained
  before = os.path.getmtime(os.path.join(wd, "eval", "sem-ra2", RESULTS_FILE))
  assert main(["study", "--config", cfg_file, "--workdir", wd]) == 0
  again = atomic.read_json(os.path.join(wd, "efficacy.json"))
  assert [r["accuracy"] for r in again["rows"]] == [r["accuracy"] for r in res["rows"]]
  assert os.path.getmtime(os.path.join(wd, "eval", "sem-ra2", RESULTS_FILE)) == before


# ----------------------------------------------------------------------------- bad options
def _eval_args(data, tmp_path, *extra, noise=None):
  cfg = write_any_config_file(tmp_path / "ev.py", "tiny_eval_config(%r)" % data["npz"],
                              "import sys\nsys.path.insert(0, %r)\nfrom conftest import "
                              "tiny_eval_config" % os.path.join(REPO, "tests"))
  return ["evaluate", "--config", cfg, "--noise", noise or data["sem"], "--workdir",
          str(tmp_path / "w"), *extra]


@pytest.mark.parametrize("extra,pattern", [
    (["--config.defenses=jpeg,sharpen"], "unknown defense 'sharpen'"),
    (["--config.protected_fraction=1.5"], r"protected_fraction must be in \[0, 1\], got 1.5"),
    (["--config.protected_fraction=-0.1"], "protected_fraction must be finite and >= 0"),
    (["--config.unprotected_only=true"], "unprotected part, which is empty"),
    (["--config.jpeg_quality=0"], r"jpeg_quality must be in \[1, 95\]"),
    (["--config.model=resnet1000"], "unknown model 'resnet1000'"),
    (["--config.defenses=mixup,cutmix"], "one of mixup and cutmix"),
])
def test_bad_evaluate_options(data, tmp_path, capsys, extra, pattern):
  code = main(_eval_args(data, tmp_path, *extra))
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
  import re
  assert re.search(pattern, err[0]), err[0]
  assert not (tmp_path / "w").exists()


def _noise_workdir(npz: str, workdir: str, seed: int = 0) -> str:
  """A noise workdir for the dataset in ``npz`` made by hand (random int8 noise imported),
  without running a generation."""
  from sem_jax.commands.import_noise import import_noise
  from sem_jax.data.sources import load_npz
  shape = load_npz(npz).train_images.shape
  noise = np.random.default_rng(seed).integers(-8, 9, shape).astype(np.int8)
  np.save(workdir + ".npy", noise)
  import_noise(tiny_config(npz), workdir + ".npy", workdir, "nhwc", "levels", log=lambda *_: None)
  return workdir


def test_bad_noise_dirs(data, tmp_path, capsys):
  code = main(_eval_args(data, tmp_path, noise=str(tmp_path / "missing")))
  assert code == 2 and "noise directory not found" in capsys.readouterr().err
  # noise made for a dataset of another shape
  other = tmp_path / "other.npz"
  np.savez(other, **synthetic_arrays(n_train=40, size=12))
  gen = _noise_workdir(str(other), str(tmp_path / "other_sem"))
  code = main(_eval_args(data, tmp_path, noise=gen))
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and "does not match" in err[0] and "(40, 12, 12, 1)" in err[0]
  # same shape, other images
  same_shape = tmp_path / "same.npz"
  np.savez(same_shape, **synthetic_arrays(seed=9))
  gen2 = _noise_workdir(str(same_shape), str(tmp_path / "same_sem"))
  code = main(_eval_args(data, tmp_path, noise=gen2))
  assert code == 2 and "different training images" in capsys.readouterr().err
  # a tampered noise file is refused before training
  import shutil
  bad = str(tmp_path / "tampered")
  shutil.copytree(data["sem"], bad)
  path = os.path.join(bad, artifacts.NOISE_FILE)
  flip_byte(path, -1, 1)
  code = main(_eval_args(data, tmp_path, noise=bad))
  assert code == 2 and "SHA-256" in capsys.readouterr().err
  assert not (tmp_path / "w").exists()


def test_a_batch_larger_than_the_training_set_adapts_and_is_recorded(data, tmp_path):
  """52 training images, batch 64, 8 devices: the victim trains on batches of 48 (the largest
  multiple of 8 that fits), says so, and records it; the rerun resumes the same run."""
  lines = []
  wd = str(tmp_path / "v")
  cfg = tiny_eval_config(data["npz"], train_steps=2, batch_size=64)
  r = evaluate_noise(cfg, data["sem"], wd, log=lines.append)
  assert r["num_train_used"] == 52
  assert any("batch_size 64 exceeds the 52 training images the victim trains on: training on "
             "batches of 48" in l for l in lines), lines
  assert json.load(open(os.path.join(wd, "run_config.json")))["config"]["batch_size"] == 48
  assert evaluate_noise(cfg, data["sem"], wd, log=lines.append) == r
