"""Bad input through the command line: one 'error:' line, exit status 2, no traceback."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, synthetic_arrays
from sem_jax.cli import main

SEM = os.path.join(REPO, "configs/mnist5k/sem.py")


def _tiny_npz_config(tmp_path, **arrays_override):
  arrays = synthetic_arrays()
  arrays.update(arrays_override)
  p = tmp_path / "data.npz"
  np.savez(p, **arrays)
  return ["--config.dataset=npz", f"--config.data_dir={p}", "--config.batch_size=16",
          "--config.train_steps=1", "--config.noise_steps=1", "--config.num_samples=1",
          "--config.adv_steps=1", "--config.model_width=4", "--config.unroll_loops=false"]


def _run(capsys, argv):
  code = main(argv)
  out, err = capsys.readouterr()
  return code, out, err


def _assert_one_line_error(code, err, pattern):
  assert code == 2
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), err
  assert "Traceback" not in err
  import re
  assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("override,pattern", [
    ("--config.method=fancy", "unknown method 'fancy'"),
    ("--config.dataset=imagenet_full", "unknown dataset 'imagenet_full'"),
    ("--config.noise_radius=0", r"noise_radius .* \(0, 255\], got 0"),
    ("--config.noise_radius=-3", r"noise_radius .* got -3"),
    ("--config.noise_radius=300", r"noise_radius .* got 300"),
    ("--config.noise_radius=nan", "noise_radius must be finite"),
    ("--config.batch_size=0", "batch_size must be >= 1"),
    ("--config.train_steps=ten", "expected int, got 'ten'"),
    ("--config.no_such_field=1", "unknown config field 'no_such_field'"),
])
def test_bad_config_values(override, pattern, capsys, tmp_path):
  wd = tmp_path / "wd"
  code, _, err = _run(capsys, ["generate", "--config", SEM, "--workdir", str(wd), override])
  _assert_one_line_error(code, err, pattern)
  assert not wd.exists()  # nothing written for a refused config


def test_missing_config_file(capsys, tmp_path):
  code, _, err = _run(capsys, ["generate", "--config", str(tmp_path / "nope.py"), "--workdir",
                               str(tmp_path / "w")])
  _assert_one_line_error(code, err, "config file not found")


def test_nan_images_are_refused(capsys, tmp_path):
  x = synthetic_arrays()["x_train"].astype(np.float32)
  x[7, 3, 3, 0] = np.nan
  args = _tiny_npz_config(tmp_path, x_train=x)
  code, _, err = _run(capsys, ["generate", "--config", SEM, "--workdir", str(tmp_path / "w"), *args])
  _assert_one_line_error(code, err, "image 7 contains NaN")


def test_labels_out_of_range_are_refused(capsys, tmp_path):
  y = synthetic_arrays()["y_train"].copy()
  y[11] = 10
  args = _tiny_npz_config(tmp_path, y_train=y) + ["--config.num_classes=4"]
  code, _, err = _run(capsys, ["generate", "--config", SEM, "--workdir", str(tmp_path / "w"), *args])
  _assert_one_line_error(code, err, r"label 10 at index 11 is out of range \[0, 4\)")


def test_wrong_image_shape_is_refused(capsys, tmp_path):
  args = _tiny_npz_config(tmp_path, x_train=np.zeros((52, 16), np.uint8))
  code, _, err = _run(capsys, ["generate", "--config", SEM, "--workdir", str(tmp_path / "w"), *args])
  _assert_one_line_error(code, err, r"expected images of shape \(N, H, W, C\)")


def test_mismatched_workdir_is_refused(capsys, tmp_path):
  args = _tiny_npz_config(tmp_path)
  wd = str(tmp_path / "w")
  assert main(["generate", "--config", SEM, "--workdir", wd, *args]) == 0
  capsys.readouterr()
  code, _, err = _run(capsys, ["generate", "--config", SEM, "--workdir", wd, *args,
                               "--config.seed=3"])
  _assert_one_line_error(code, err, "different config or dataset .*seed: 0 -> 3")


def test_a_workdir_of_another_kind_is_named(capsys, tmp_path):
  """A generate run's workdir given to evaluate, and a study's to generate: the error says
  what the folder holds and what the command needs; nothing in it changes."""
  args = _tiny_npz_config(tmp_path)
  wd = str(tmp_path / "w")
  assert main(["generate", "--config", SEM, "--workdir", wd, *args]) == 0
  capsys.readouterr()
  before = sorted(os.listdir(wd))
  data = [a for a in args if a.startswith(("--config.dataset", "--config.data_dir"))]
  code, _, err = _run(capsys, ["evaluate", "--config", os.path.join(REPO, "configs/eval/mnist5k.py"),
                               "--noise", "none", "--workdir", wd, *data,
                               "--config.train_steps=1", "--config.model_width=4"])
  _assert_one_line_error(code, err, r"holds a noise run \(`generate`\), not a victim "
                                    r"\(`evaluate`\): use a new --workdir")
  assert sorted(os.listdir(wd)) == before
  study = tmp_path / "study"
  study.mkdir()
  (study / "sem_jax_study.json").write_text("{}")
  code, _, err = _run(capsys, ["generate", "--config", SEM, "--workdir", str(study), *args])
  _assert_one_line_error(code, err, r"holds a study's workdir \(`study`\), not a noise run")
  from sem_jax.commands.formats import EXPORT_MANIFEST
  from sem_jax.run import identity
  from sem_jax.suites.study.lock import MARK_FILE
  assert (identity.STUDY_MARK, identity.EXPORT_MARK) == (MARK_FILE, EXPORT_MANIFEST)


def test_a_config_file_that_fails_is_one_line_naming_it(capsys, tmp_path):
  """At import and inside get_config() alike, for run and study configs."""
  cases = {
      "bad_call.py": ("from sem_jax.run.config import GenerateConfig\n\ndef get_config():\n"
                      "  return GenerateConfig(train_steps=int('four hundred'))\n",
                      r"bad_call.py: get_config\(\) failed: ValueError: invalid literal"),
      "bad_import.py": ("import no_such_module_here\n", r"bad_import.py failed to load: "
                        r"ModuleNotFoundError"),
      "bad_study.py": ("from sem_jax.suites.study import StudyConfig, Experiment\n\n"
                       "def get_config():\n  return StudyConfig(experiments=(Experiment(\n"
                       "      'x', 'g', None, (0.0,), generate=1 / 0),))\n",
                       r"bad_study.py: get_config\(\) failed: ZeroDivisionError"),
  }
  for name, (text, pattern) in cases.items():
    path = tmp_path / name
    path.write_text(text)
    command = "study" if "study" in name else "generate"
    code, _, err = _run(capsys, [command, "--config", str(path), "--workdir", str(tmp_path / "w")])
    _assert_one_line_error(code, err, pattern)
  assert not (tmp_path / "w").exists()


def test_an_override_typo_names_the_nearest_fields_in_one_short_line(capsys, tmp_path):
  code, _, err = _run(capsys, ["generate", "--config", SEM, "--workdir", str(tmp_path / "w"),
                               "--config.train_step=4"])
  _assert_one_line_error(code, err, r"unknown config field 'train_step'; did you mean train_steps")
  assert len(err.strip()) < 120, err
  code, _, err = _run(capsys, ["study", "--config", os.path.join(REPO, "configs/study/cpu.py"),
                               "--workdir", str(tmp_path / "s"), "--config.evaluation.train_step=4"])
  _assert_one_line_error(code, err,
                         r"unknown config field 'evaluation.train_step'; did you mean train_steps")
  code, _, err = _run(capsys, ["generate", "--config", SEM, "--workdir", str(tmp_path / "w"),
                               "--config.zzzz=1"])
  _assert_one_line_error(code, err, r"unknown config field 'zzzz'; the fields and their units")
  assert not (tmp_path / "w").exists() and not (tmp_path / "s").exists()


def test_cli_process_prints_no_traceback(tmp_path):
  """The real entry point, as a user runs it."""
  r = subprocess.run([sys.executable, os.path.join(REPO, "run.py"), "generate", "--config", SEM,
                      "--workdir", str(tmp_path / "w"), "--config.method=bogus"],
                     capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
  assert r.returncode == 2
  assert r.stderr.strip() == "error: unknown method 'bogus'; choose one of sem, rem, em, tap, hypo, random, lsp, ar, ops, cuda, entf, ntga, dc, gue"


_EVAL = os.path.join(REPO, "configs/eval/mnist5k.py")
_GEN = os.path.join(REPO, "configs/mnist5k/sem.py")


@pytest.mark.parametrize("argv,pattern", [
    (["generate", "--config", "DIR", "--workdir", "w"], "config file not found: .*DIR"),
    (["generate", "--config", _GEN, "--workdir", "FILE"], "workdir .*FILE is a file"),
    (["generate", "--config", _GEN, "--workdir", "FILE/x"], "cannot create workdir .*FILE/x"),
    (["evaluate", "--config", _EVAL, "--noise", "FILE", "--workdir", "w"],
     "noise directory not found: .*FILE"),
    (["evaluate", "--config", _EVAL, "--noise", "none", "--workdir", "FILE"],
     "workdir .*FILE is a file"),
    (["study", "--config", os.path.join(REPO, "configs/study/radius.py"), "--workdir", "FILE"],
     "workdir .*FILE is a file"),
    (["study", "--config", os.path.join(REPO, "configs/study/efficacy_mnist5k.py"),
      "--workdir", "FILE/x"], "cannot create workdir .*FILE/x"),
    (["export", "--noise", "FILE", "--format", "png", "--out", "o"], "noise directory not found"),
    (["export", "--noise", "DIR", "--format", "png", "--out", "FILE"],
     "export directory .*FILE is a file"),
    (["verify", "--noise", "FILE"], "noise directory not found: .*FILE"),
    (["verify", "--noise", "DIR", "--export", "FILE"], "export directory not found: .*FILE"),
    (["visualize", "--noise", "FILE", "--out", "g.png"], "noise directory not found"),
    (["import-noise", "--source", "DIR", "--workdir", "FILE"], "workdir .*FILE exists"),
    (["bench", "--config", "DIR"], "config file not found"),
    (["evaluate", "--noise", "none", "--workdir", "w"], "--noise none needs --config"),
    (["evaluate", "--noise", "FILE", "--workdir", "w"], "noise directory not found: .*FILE"),
    (["study", "--config", os.path.join(REPO, "configs/study/efficacy_mnist5k.py"),
      "--workdir", "gs://bucket/suite"], "--workdir gs://bucket/suite: must be a local path"),
    (["import-noise", "--source", "gs://b/noise", "--workdir", "w"],
     "--source gs://b/noise: must be a local path"),
    (["export", "--noise", "DIR", "--format", "png", "--out", "ftp://b/o"],
     "ftp://b/o: .*[Uu]nsupported scheme"),
])
def test_every_path_of_the_wrong_kind_is_one_error_line(argv, pattern, tmp_path, capsys):
  """A file where a directory is expected (and the reverse), a directory under a file: one
  `error:` line and exit status 2 for every subcommand, never a traceback."""
  (tmp_path / "FILE").write_text("a user's file")
  (tmp_path / "DIR").mkdir()
  argv = [str(tmp_path / a) if a in ("FILE", "DIR", "FILE/x", "w", "o") else a for a in argv]
  code = main(argv)
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
  assert re.search(pattern, err[0]), err[0]
  assert (tmp_path / "FILE").read_text() == "a user's file"


def test_study_workers_must_be_positive(tmp_path, capsys, monkeypatch):
  from sem_jax.run.runtime import DETERMINISTIC_FLAG
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
  code = main(["study", "--config", os.path.join(REPO, "configs/study/radius.py"),
               "--workdir", str(tmp_path / "w"), "--workers", "0"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and err == ["error: workers must be >= 1, got 0"]
  assert not (tmp_path / "w").exists()
  # Compiling commands ask XLA for deterministic GPU kernels before anything starts a backend.
  assert os.environ["XLA_FLAGS"].split()[-1] == DETERMINISTIC_FLAG


def test_study_seed_runs_the_replicate_of_every_config(tmp_path, monkeypatch):
  """`study --seed N` hands run_study each config reseeded (names and files -seedN); 0 or no
  flag, the configs as they are."""
  import sem_jax.suites.study as S
  seen = []
  monkeypatch.setattr(S, "run_study", lambda cfg, workdir, log=None: seen.append(cfg) or {})
  radius = os.path.join(REPO, "configs/study/radius.py")
  args = ["study", "--config", radius, "--workdir", str(tmp_path / "w")]
  assert main(args + ["--seed", "1"]) == 0 and main(args) == 0
  assert [c.name for c in seen] == ["radius-seed1", "radius"]
  assert all(e.name.endswith("-seed1") and e.evaluation.seed == 1 for e in seen[0].experiments)
  assert len(seen[0].experiments) == len(seen[1].experiments)


@pytest.mark.parametrize("command", ["generate", "evaluate", "export", "verify", "visualize",
                                     "import-noise", "study", "bench", "prepare", "bench-data",
                                     "detect"])
def test_every_help_answers_without_importing_jax_under_the_one_program_name(command):
  """The README: `COMMAND --help` answers without importing JAX, and run.py, sem-jax and
  python -m sem_jax are one program (usage line `sem-jax COMMAND`)."""
  import subprocess
  import sys
  code = ("import sys\nfrom sem_jax.cli import main\ntry:\n  main([%r, '--help'])\n"
          "except SystemExit:\n  pass\nassert 'jax' not in sys.modules, 'jax imported'\n" % command)
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                     cwd=REPO)
  assert r.returncode == 0, r.stderr
  assert r.stdout.startswith(f"usage: sem-jax {command}"), r.stdout[:200]
