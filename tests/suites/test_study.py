"""The protection study: a tiny study runs, resumes after an interruption, writes its tables;
the feasible-set projection keeps every published pixel unclipped."""
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config, tiny_eval_config
from sem_jax.core import keys as K, train
from sem_jax.core.crafting import noise as N
from sem_jax.core.units import normalize, protect
from sem_jax.data.sources import load_dataset
from sem_jax.errors import SemJaxError
from sem_jax.core.nets.models import create_model
from sem_jax.suites.study import Experiment, StudyConfig, markdown, write_tables, run_study
from sem_jax.run import build
from sem_jax.run import specs


def _study(npz):
  ev = tiny_eval_config(npz, train_steps=4, eval_every=2)
  return StudyConfig(title="tiny", name="tiny", experiments=(
      Experiment("clean", "g", ev, (0.0, 2.0)),
      Experiment("sem", "g", ev, (0.0, 2.0), tiny_config(npz, train_steps=2)),
      Experiment("sem-proj", "g", ev, (0.0,),
                 tiny_config(npz, train_steps=2, project_to_valid_range=True), "sem + proj"),
      Experiment("tap", "h / k", ev, (0.0,), tiny_config(npz, method="tap", tap_model="x")),
      Experiment("clean", "h / k", ev, (0.0,)),
  ))


def test_tiny_study_resumes_and_writes_tables(npz_path, tmp_path, one_device):
  cfg = _study(npz_path)
  wd = str(tmp_path / "study")
  calls = []

  def interrupt(line):
    calls.append(line)
    if line.startswith("== victim: sem, PGD-AT ρa 2"):
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    run_study(cfg, wd, log=interrupt, devices=one_device)
  partial = open(os.path.join(wd, "tiny.md")).read()   # tables of the rows finished so far
  assert "(partial" in partial and "| clean |" in partial and "| sem |" not in partial
  done_first = os.path.join(wd, "eval", "sem-ra0", "results.json")
  stamp = os.stat(done_first).st_mtime_ns
  logs = []
  result = run_study(cfg, wd, log=logs.append, devices=one_device)
  assert os.stat(done_first).st_mtime_ns == stamp          # finished pieces are not redone
  assert any("nothing to do" in l for l in logs)
  rows = {(r["group"], r["name"]): r for r in result["rows"]}
  assert set(rows) == {("g", "clean"), ("g", "sem"), ("g", "sem-proj"), ("h / k", "tap"),
                       ("h / k", "clean")}
  assert set(rows[("g", "sem")]["accuracy"]) == {"0", "2"}
  assert rows[("g", "sem")]["surrogate_robust_test_accuracy"] is not None
  assert rows[("h / k", "tap")]["method"] == "tap"
  md = open(os.path.join(wd, "tiny.md")).read()
  assert "(partial" not in md and result["complete"]
  assert "## g" in md and "## h / k" in md and "sem + proj" in md
  assert os.path.exists(os.path.join(wd, "tiny-g.png"))
  assert os.path.exists(os.path.join(wd, "tiny-h - k.png"))   # a '/' in a group's name
  assert json.load(open(os.path.join(wd, "tiny.json")))["rows"] == result["rows"]
  # every row's noise and victims name the CPU they were computed on, and the tables say it
  from sem_jax.run import machine
  here = machine.describe()
  assert all(r["machine"] == here for r in result["rows"])
  assert all(r["generation_machine"] == here for r in result["rows"] if r["method"] != "clean")
  assert result["machines"] == [machine.line(here)]
  assert f"Computed on: {machine.line(here)}." in md

  # A second study in the same workdir reuses the runs it shares, writes its own tables...
  other = StudyConfig(title="other", name="other", experiments=cfg.experiments[1:2])
  logs = []
  second = run_study(other, wd, log=logs.append, devices=one_device)
  assert os.stat(done_first).st_mtime_ns == stamp
  assert second["rows"][0]["accuracy"] == rows[("g", "sem")]["accuracy"]
  assert os.path.exists(os.path.join(wd, "other.md")) and os.path.exists(os.path.join(wd, "tiny.md"))
  # ...and a name reused for a different run is refused by that run, which stays intact.
  sem = cfg.experiments[1]
  changed = dataclasses.replace(sem, generate=sem.generate.replace(seed=7))
  with pytest.raises(SemJaxError, match="different config"):
    run_study(other.replace(experiments=(changed,)), wd, log=lambda *_: None, devices=one_device)
  assert os.stat(done_first).st_mtime_ns == stamp


def test_tables_name_each_rows_device_only_when_devices_differ():
  """Rows measured on several machines (a GPU grid plus CPU rows): each row says where it ran;
  a table from one machine keeps its columns."""
  def row(label, kind):
    return {"label": label, "group": "g", "method": "sem", "accuracy": {"0": 0.25, "4": 0.5},
            "generation_s": 56.0, "surrogate_clean_test_accuracy": 0.9,
            "surrogate_robust_test_accuracy": None, "device_kind": kind}
  one = markdown({"title": "t", "rows": [row("a", "cpu"), row("b", "cpu")]})
  assert "| a | 25.0 | 50.0 | 56 s | 90.0 / - |\n" in one and "device |" not in one
  two = markdown({"title": "t", "rows": [row("a", "NVIDIA H200"), row("b", "cpu")]})
  assert "Devices: NVIDIA H200, cpu." in two
  assert "| experiment | ρa 0 | ρa 4 | generation | surrogate clean / robust acc | device |" in two
  assert "|---|---|---|---|---|---|" in two
  assert "| a | 25.0 | 50.0 | 56 s | 90.0 / - | NVIDIA H200 |" in two
  assert "| b | 25.0 | 50.0 | 56 s | 90.0 / - | cpu |" in two


def test_a_group_at_one_radius_is_drawn_as_bars_with_room_for_each(tmp_path, monkeypatch):
  """A group whose victims all train at one ρa gets a bar per experiment (a line plot would
  stack them on one x); the chart grows with its rows. Other groups keep their lines."""
  from PIL import Image
  from sem_jax.files import atomic
  from sem_jax.suites import study
  from sem_jax.suites.study import plot
  drawn = []
  monkeypatch.setattr(study.table, "line_plot", lambda path, *a, **k: drawn.append(path))

  def row(i, accuracy):
    return {"label": f"row {i}", "group": "g", "method": "clean" if i == 0 else "sem",
            "accuracy": accuracy}
  few = {"rows": [row(i, {"0": 0.1 * i}) for i in range(3)]}
  many = {"rows": [row(i, {"0": 0.05 * i}) for i in range(16)]}
  plot(few, "g", str(tmp_path / "few.png"))
  plot(many, "g", str(tmp_path / "many.png"))
  assert drawn == []
  h_few, h_many = (Image.open(tmp_path / f).size[1] for f in ("few.png", "many.png"))
  assert h_many >= h_few + 13 * 25     # about 32 px more per bar
  plot({"rows": [row(1, {"0": 0.5, "4": 0.7})]}, "g", str(tmp_path / "lines.png"))
  plot({"rows": [row(1, {"0": 0.5}), row(2, {"4": 0.7})]}, "g", str(tmp_path / "mixed.png"))
  assert drawn == [str(tmp_path / "lines.png"), str(tmp_path / "mixed.png")]


def test_tables_keep_the_most_workers_any_run_used(tmp_path):
  """A study whose first rows ran 12 at once keeps saying so when a later run (2 workers, or
  the sequential study) adds rows: its note is about every row in the table."""
  cfg, wd = StudyConfig(title="t", name="t"), str(tmp_path)
  row = {"label": "a", "group": "g", "method": "clean", "accuracy": {"0": 0.9},
         "generation_s": 0.0, "victim_s": {"0": 1.0}, "surrogate_clean_test_accuracy": None,
         "surrogate_robust_test_accuracy": None}
  assert "workers" not in write_tables(cfg, wd, [row], 0.0, True)     # sequential: no note
  assert "ran at once" not in open(os.path.join(wd, "t.md")).read()
  assert write_tables(cfg, wd, [row], 0.0, True, extra={"workers": 12})["workers"] == 12
  assert write_tables(cfg, wd, [row], 0.0, True, extra={"workers": 2})["workers"] == 12
  assert write_tables(cfg, wd, [row], 0.0, True)["workers"] == 12
  assert "Up to 12 experiments ran at once" in open(os.path.join(wd, "t.md")).read()
  assert json.load(open(os.path.join(wd, "t.json")))["workers"] == 12


def test_total_compute_counts_each_noise_once_however_many_rows_train_on_it():
  """A leaderboard trains one victim per defense on each attack's noise: the noise was made
  once, so its generation counts once; every victim counts."""
  from sem_jax.suites.study import total_compute_s

  def row(noise, gen, victim):
    return {"generation_s": gen, "victim_s": {"0": victim}, **({"noise": noise} if noise else {})}
  rows = [row("noise/sem", 300.0, 60.0), row("noise/sem", 300.0, 240.0),
          row("noise/em", 80.0, 60.0), row("noise/sem", 300.0, 60.0),
          row(None, 0.0, 60.0), row(None, 7.0, 1.0)]   # clean data; an older row naming no noise
  assert total_compute_s(rows) == 300.0 + 80.0 + 7.0 + (60 + 240 + 60 + 60 + 60 + 1)


def test_study_refuses_a_foreign_workdir_and_a_busy_one(npz_path, tmp_path, one_device):
  from sem_jax.suites.study import workdir_lock
  from sem_jax.suites.pool import run_pool
  wd = tmp_path / "photos"
  wd.mkdir()
  (wd / "mine.txt").write_text("a user's file")
  with pytest.raises(SemJaxError, match="holds no study"):
    run_study(_study(npz_path), str(wd), log=lambda *_: None, devices=one_device)
  assert os.listdir(wd) == ["mine.txt"]
  busy = str(tmp_path / "busy")
  with workdir_lock(busy):     # another study command holds it: both kinds refuse at once
    with pytest.raises(SemJaxError, match=f"in use by another study command \\(pid {os.getpid()}"):
      run_study(_study(npz_path), busy, log=lambda *_: None, devices=one_device)
    with pytest.raises(SemJaxError, match="in use by another study command"):
      run_pool([_study(npz_path)], busy, workers=2, log=lambda *_: None)
  assert sorted(os.listdir(busy)) == [".sem_jax_study.lock", "sem_jax_study.json"]


def test_study_refuses_a_name_for_two_experiments(npz_path):
  ev = tiny_eval_config(npz_path)
  bad = StudyConfig(experiments=(Experiment("a", "g", ev), Experiment("a", "g", ev.replace(seed=1))))
  with pytest.raises(SemJaxError, match="used for two different"):
    bad.validate()
  with pytest.raises(SemJaxError, match="study name"):
    StudyConfig(experiments=(Experiment("a", "g", ev),), name="../x").validate()
  with pytest.raises(SemJaxError, match="needs a clean experiment"):
    StudyConfig(experiments=(Experiment("t", "g", ev, (0.0,),
                                        tiny_config(npz_path, method="tap", tap_model="x")),)).validate()


def test_replicate_reseeds_every_run_keeps_tap_on_its_groups_clean_and_drops_own_replicates(
    npz_path):
  from sem_jax.cli import _parser
  from sem_jax.suites.study import clean_of, replicate
  ev, gen = tiny_eval_config(npz_path), tiny_config(npz_path)
  cfg = StudyConfig(name="s", title="t", experiments=(
      Experiment("clean", "g", ev),
      Experiment("sem", "g", ev, (0.0, 2.0), gen, "SEM"),
      Experiment("sem-seed1", "g", ev.replace(seed=1), (0.0,), gen.replace(seed=1)),
      Experiment("sem-again", "h", ev, (4.0,), gen, noise="sem"),
      Experiment("tap", "g", ev, (0.0,), tiny_config(npz_path, method="tap", tap_model="x"))))
  assert replicate(cfg, 0) is cfg
  r = replicate(cfg, 2).validate()
  assert (r.name, r.title) == ("s-seed2", "t (seed 2)")
  assert [e.name for e in r.experiments] == ["clean-seed2", "sem-seed2", "sem-again-seed2",
                                             "tap-seed2"]
  by = {e.name: e for e in r.experiments}
  assert all(e.evaluation.seed == 2 for e in r.experiments)
  assert all(e.generate.seed == 2 for e in r.experiments if e.generate is not None)
  assert by["sem-seed2"].label == "SEM (seed 2)" and by["sem-seed2"].adv_radii == (0.0, 2.0)
  assert by["sem-again-seed2"].noise_name == by["sem-seed2"].noise_name == "sem-seed2"
  assert clean_of(r, by["tap-seed2"]).name == "clean-seed2"
  # seed 1 of "sem" is exactly the config's own replicate, which is left out
  one = {e.name: e for e in replicate(cfg, 1).experiments}
  own = cfg.experiments[2]
  assert (one["sem-seed1"].evaluation, one["sem-seed1"].generate) == (own.evaluation, own.generate)
  with pytest.raises(SemJaxError, match="seed"):
    replicate(cfg, -1)
  args = _parser().parse_args(["study", "--config", "c.py", "--workdir", "w", "--seed", "3"])
  assert args.seed == 3


def test_projection_keeps_published_pixels_unclipped():
  """With project_to_valid_range, x + δ stays in [0, 255]: publishing clips nothing, and the
  stored noise is exactly the published change. Without it, MNIST's black background clips."""
  ds = load_dataset("mnist5k")
  x_u8, y = ds.train_images[:16], ds.train_labels[:16]
  model = create_model("small_cnn", 10, 4)
  state = train.init_state(model, build.optimizer(tiny_config("unused")), jax.random.key(0),
                           (32, 32, 1))
  keys = K.per_sample(jax.random.key(1), jnp.arange(16))
  out = {}
  for project in (False, True):
    spec = specs.craft_spec(tiny_config("unused", project_to_valid_range=project, noise_steps=3))
    delta = N.craft(spec, train.logits_fn(model, state), normalize(x_u8), y, keys)
    noise = np.asarray(N.quantize(delta, spec.int8_bound))
    assert np.abs(noise.astype(int)).max() <= 8
    raw = x_u8.astype(int) + noise.astype(int)
    out[project] = ((raw < 0) | (raw > 255)).mean()
    if project:
      np.testing.assert_array_equal(protect(x_u8, noise).astype(int), raw)
  assert out[True] == 0 and out[False] > 0.2


def test_later_fields_enter_a_runs_identity_only_when_set(npz_path):
  """A workdir made before project_to_valid_range existed keeps its identity (and resumes)."""
  cfg = tiny_config(npz_path)
  assert "project_to_valid_range" not in cfg.result_fields()
  assert cfg.replace(project_to_valid_range=True).result_fields()["project_to_valid_range"] is True


def test_study_pool_runs_two_studies_at_once_and_resumes(npz_path, tmp_path, monkeypatch):
  """--workers: experiments of two studies in worker processes (a shared one runs once; TAP
  waits for its clean victim, a reuse of noise for its generation); SIGTERM stops the workers,
  the next run finishes; the noise is the one an in-process run makes on the same devices
  (the workers see the 8 fake devices)."""
  import signal
  import threading
  import time
  from sem_jax.commands.generate import generate_noise
  from sem_jax.suites.pool import run_pool
  ev = tiny_eval_config(npz_path, train_steps=4, eval_every=2)
  sem = Experiment("sem", "g", ev, (0.0,), tiny_config(npz_path, train_steps=2))
  tiny = StudyConfig(title="tiny", name="tiny", experiments=(
      Experiment("clean", "g", ev, (0.0,)), sem,
      Experiment("sem-longer-victim", "g", ev.replace(train_steps=6), (0.0,), sem.generate,
                 noise="sem"),
      Experiment("clean", "h", ev, (0.0,)),
      Experiment("tap", "h", ev, (0.0,), tiny_config(npz_path, method="tap", tap_model="x"))))
  other = StudyConfig(title="other", name="other",
                      experiments=(dataclasses.replace(sem, adv_radii=(0.0, 2.0)),))
  wd = str(tmp_path / "pool")
  sem_log = os.path.join(wd, "pool", "sem.log")

  def stop_when_sem_generates():
    for _ in range(1200):
      if os.path.exists(sem_log) and "step 1/" in open(sem_log, errors="replace").read():
        os.kill(os.getpid(), signal.SIGTERM)
        return
      time.sleep(0.1)

  threading.Thread(target=stop_when_sem_generates, daemon=True).start()
  logs = []
  assert run_pool([tiny, other], wd, workers=2, log=logs.append) is None
  assert any("SIGTERM received" in l for l in logs)
  assert not os.path.exists(os.path.join(wd, "pool", "sem.row.json"))
  assert not os.path.exists(os.path.join(wd, "pool", "sem-longer-victim.log"))   # waits for sem

  logs = []
  tiny_result, other_result = run_pool([tiny, other], wd, workers=2, log=logs.append)
  assert tiny_result["complete"] and other_result["complete"] and tiny_result["workers"] == 2
  assert "resum" in open(sem_log).read().lower()        # the stopped generation went on
  rows = {(r["group"], r["name"]): r for r in tiny_result["rows"]}
  assert set(rows) == {("g", "clean"), ("g", "sem"), ("g", "sem-longer-victim"), ("h", "clean"),
                       ("h", "tap")}
  assert set(rows[("g", "sem")]["accuracy"]) == {"0"}   # each listing shows its own ρa columns
  assert set(other_result["rows"][0]["accuracy"]) == {"0", "2"}
  assert other_result["rows"][0]["accuracy"]["0"] == rows[("g", "sem")]["accuracy"]["0"]
  assert sorted(f for f in os.listdir(os.path.join(wd, "pool")) if f.endswith(".row.json")) == \
      ["clean.row.json", "sem-longer-victim.row.json", "sem.row.json", "tap.row.json"]
  md = open(os.path.join(wd, "tiny.md")).read()
  assert "Up to 2 experiments ran at once" in md and "## h" in md
  assert generate_noise(sem.generate, str(tmp_path / "alone"), log=lambda *_: None,
                        devices=jax.devices()) is not None
  pooled = np.load(os.path.join(wd, "noise", "sem", "noise.npy"))
  assert np.array_equal(pooled, np.load(os.path.join(str(tmp_path / "alone"), "noise.npy")))

  stamp = os.stat(os.path.join(wd, "pool", "sem.row.json")).st_mtime_ns
  logs = []
  run_pool([tiny, other], wd, workers=2, log=logs.append)   # all finished: nothing is started
  assert any("(4 finished before)" in l for l in logs)
  assert os.stat(os.path.join(wd, "pool", "sem.row.json")).st_mtime_ns == stamp


def test_a_study_workdir_copied_elsewhere_continues_there(npz_path, tmp_path, one_device):
  """A study made in one place (a GPU machine) and copied to another goes on there: its
  finished runs stand, a victim it adds trains on the copied noise, TAP's noise keeps its
  model, and a victim stopped mid-training resumes from its checkpoint, bit-identical to an
  uninterrupted one (runs know their noise and TAP model by content digest, not path)."""
  import shutil
  from sem_jax.commands.evaluate import evaluate_noise
  ev = tiny_eval_config(npz_path, train_steps=4, eval_every=2, checkpoint_every=2)
  sem = Experiment("sem", "g", ev, (0.0,), tiny_config(npz_path, train_steps=2))
  cfg = StudyConfig(title="tiny", name="tiny", experiments=(
      Experiment("clean", "g", ev, (0.0,)), sem,
      Experiment("tap", "g", ev, (0.0,), tiny_config(npz_path, method="tap", tap_model="x"))))
  here, there = str(tmp_path / "gpu" / "study"), str(tmp_path / "cpu" / "study")
  first = run_study(cfg, here, log=lambda *_: None, devices=one_device)
  stopped = os.path.join(here, "eval", "stopped")
  assert evaluate_noise(ev.replace(stop_after_step=2), os.path.join(here, "noise", "sem"),
                        stopped, log=lambda *_: None, devices=one_device) is None
  shutil.copytree(here, there)
  shutil.rmtree(tmp_path / "gpu")                       # the old paths are gone

  more = cfg.replace(experiments=(cfg.experiments[0], dataclasses.replace(sem, adv_radii=(0.0, 2.0)),
                                  cfg.experiments[2]))
  logs = []
  second = run_study(more, there, log=logs.append, devices=one_device)
  # clean (twice: its own row and TAP's model), sem noise and victim, tap noise and victim
  assert sum("nothing to do" in l for l in logs) == 6, logs
  # the runs whose inputs moved: sem's and tap's victims (their noise), tap's noise (its model)
  assert sum("keeps its recorded identity" in l for l in logs) == 3, logs
  rows = {r["name"]: r for r in second["rows"]}
  assert rows["sem"]["accuracy"]["0"] == first["rows"][1]["accuracy"]["0"]
  assert set(rows["sem"]["accuracy"]) == {"0", "2"} and second["complete"]
  assert rows["tap"]["accuracy"] == first["rows"][2]["accuracy"]

  noise = os.path.join(there, "noise", "sem")
  logs = []
  resumed = evaluate_noise(ev, noise, os.path.join(there, "eval", "stopped"), log=logs.append,
                           devices=one_device)
  assert any("from checkpoint step 2" in l for l in logs)
  whole = evaluate_noise(ev, noise, str(tmp_path / "whole"), log=lambda *_: None,
                         devices=one_device)
  assert resumed["final"] == whole["final"] and resumed["noise"]["dir"] == os.path.abspath(noise)
  # Other noise (another digest) is another run, wherever it lies: refused, nothing touched.
  with pytest.raises(SemJaxError, match="noise.sha256"):
    evaluate_noise(ev, os.path.join(there, "noise", "tap"), os.path.join(there, "eval", "sem-ra0"),
                   log=lambda *_: None, devices=one_device)


def test_entf_attacks_its_groups_clean_pgd_at_victim_and_needs_one(npz_path, tmp_path):
  """A study hands EntF its group's clean PGD-AT victim as the reference (TAP keeps the ρa 0
  one); a group without a PGD-AT clean victim is refused before anything runs."""
  from sem_jax.suites.study import clean_of, fixed_model
  from sem_jax.suites.study.runner import victim_dir
  from sem_jax.suites.study.spec import reference_radius
  ev = tiny_eval_config(npz_path)
  entf = tiny_config(npz_path, method="entf", tap_model="x")
  tap = tiny_config(npz_path, method="tap", tap_model="x")
  cfg = StudyConfig(name="r", experiments=(
      Experiment("clean", "g", ev, (0.0, 4.0)), Experiment("entf", "g", ev, (0.0,), entf),
      Experiment("tap", "g", ev, (0.0,), tap))).validate()
  e_entf, e_tap = cfg.experiments[1], cfg.experiments[2]
  assert fixed_model(entf) and fixed_model(tap)
  assert clean_of(cfg, e_entf).name == "clean" and reference_radius(clean_of(cfg, e_entf), entf) == 4.0
  assert reference_radius(clean_of(cfg, e_tap), tap) == 0.0
  assert victim_dir(str(tmp_path), clean_of(cfg, e_entf), 4.0).endswith("eval/clean-ra4")
  alone = StudyConfig(name="r", experiments=(Experiment("clean", "g", ev, (0.0,)),
                                             Experiment("entf", "g", ev, (0.0,), entf)))
  with pytest.raises(SemJaxError, match=r"needs a clean experiment in group 'g' \(a PGD-AT"):
    alone.validate()
