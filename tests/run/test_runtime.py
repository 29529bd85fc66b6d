"""Process setup for GPU/TPU users: the persistent compilation cache is written once and reused;
a SLURM / Open MPI / TPU-pod launch is detected and joined with the bare command; a plain
machine stays single-process."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, subprocess_env, tiny_config, write_config_file
from sem_jax.run import runtime
from sem_jax.errors import SemJaxError

SLURM = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_NTASKS": "2",
         "SLURM_PROCID": "1", "SLURM_LOCALID": "0"}


@pytest.mark.parametrize("env,want", [
    ({}, None),
    (SLURM, "slurm"),
    ({**SLURM, "SLURM_NTASKS": "1"}, None),                      # one task: single process
    ({"SLURM_JOB_ID": "7"}, None),                               # inside a job, not under srun
    ({"OMPI_MCA_orte_hnp_uri": "x", "OMPI_COMM_WORLD_SIZE": "4"}, "openmpi"),
    ({"TPU_WORKER_ID": "0", "TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}, "tpu-pod"),
    ({"TPU_WORKER_ID": "0", "TPU_WORKER_HOSTNAMES": "localhost"}, None),   # one TPU VM host
])
def test_cluster_detection(env, want):
  assert runtime.detected_cluster(env) == want


def test_initialize_distributed_joins_only_what_it_detects(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  assert runtime.initialize_distributed(env={}) is None and calls == []
  assert runtime.initialize_distributed(env=SLURM) == "slurm" and calls == [{}]
  assert runtime.initialize_distributed(
      env={"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
  ) == "explicit"
  assert calls[-1] == {"coordinator_address": "h:1", "num_processes": 2, "process_id": 1}
  with pytest.raises(SemJaxError, match="need --coordinator_address"):
    runtime.initialize_distributed(num_processes=2, env={})

  def broken(**kw):
    raise RuntimeError("coordinator unreachable\nmore")

  monkeypatch.setattr(jax.distributed, "initialize", broken)
  with pytest.raises(SemJaxError, match="detected a slurm launch .*coordinator unreachable"):
    runtime.initialize_distributed(env=SLURM)


@pytest.mark.slow
def test_the_compilation_cache_is_written_once_and_reused(npz_path, tmp_path):
  """Two runs of one config in new workdirs: the first fills the cache, the second adds
  nothing (every compilation was a cache hit) and writes the same noise. Every compilation is
  cached (JAX's own threshold variable set to 0, which the run respects): with the default
  0.3 s threshold a compilation just under it in one run and over it in the other (a loaded
  machine) would add an entry."""
  cache = tmp_path / "cache"
  conf = write_config_file(tmp_path / "cfg.py", tiny_config(npz_path, train_steps=2))
  env = subprocess_env(1, **{runtime.CACHE_ENV: str(cache), runtime.MIN_COMPILE_ENV: "0"})
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  listing = []
  for name in ("a", "b"):
    r = subprocess.run([sys.executable, os.path.join(REPO, "run.py"), "generate", "--config",
                        conf, "--workdir", str(tmp_path / name)], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    listing.append(sorted(os.listdir(cache)))
  assert listing[0] and listing[1] == listing[0]
  a, b = (np.load(tmp_path / n / "noise.npy") for n in ("a", "b"))
  np.testing.assert_array_equal(a, b)


def test_cache_can_be_turned_off_or_moved(monkeypatch, tmp_path):
  suite_cache = jax.config.jax_compilation_cache_dir   # the suite's own (conftest)
  try:
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv(runtime.CACHE_ENV, "off")
    assert runtime.enable_compilation_cache() is None
    assert not jax.config.jax_compilation_cache_dir
    monkeypatch.setenv(runtime.CACHE_ENV, str(tmp_path / "x"))
    assert runtime.enable_compilation_cache() == str(tmp_path / "x")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "x")
  finally:
    jax.config.update("jax_compilation_cache_dir", suite_cache)


def test_deterministic_gpu_kernels_are_requested_once_unless_declined():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  assert runtime.request_deterministic_gpu(env)
  assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=8",
                                      runtime.DETERMINISTIC_FLAG]
  assert not runtime.request_deterministic_gpu(env)            # already there: not doubled
  assert env["XLA_FLAGS"].count("xla_gpu_deterministic_ops") == 1
  mine = {"XLA_FLAGS": "--xla_gpu_deterministic_ops=false"}    # the user's own choice wins
  assert not runtime.request_deterministic_gpu(mine)
  assert mine["XLA_FLAGS"] == "--xla_gpu_deterministic_ops=false"
  off = {runtime.DETERMINISTIC_ENV: "0"}
  assert not runtime.request_deterministic_gpu(off) and "XLA_FLAGS" not in off
  fresh = {}
  assert runtime.request_deterministic_gpu(fresh) and fresh["XLA_FLAGS"] == runtime.DETERMINISTIC_FLAG
  # XLA knows the flag (an unknown one aborts the process at backend creation).
  out = subprocess.run([sys.executable, "-c", "import jax; print(float(jax.numpy.ones(3).sum()))"],
                       env={**os.environ, "XLA_FLAGS": runtime.DETERMINISTIC_FLAG},
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0 and out.stdout.strip() == "3.0", out.stderr[-2000:]


def test_unroll_auto_resolves_by_backend_and_is_not_part_of_a_runs_identity(npz_path):
  from sem_jax.run.runtime import loops_unrolled
  assert loops_unrolled("auto") == (jax.default_backend() == "cpu")
  assert loops_unrolled(True) and not loops_unrolled("false") and loops_unrolled("TRUE")
  cfg = tiny_config(npz_path)
  assert "unroll_loops" not in cfg.result_fields()
  with pytest.raises(SemJaxError, match="unknown unroll_loops 'sometimes'"):
    cfg.replace(unroll_loops="sometimes").validate()


@pytest.mark.slow
def test_a_workdir_from_before_unroll_became_runtime_resumes(npz_path, tmp_path, monkeypatch):
  """A 0.1.0 run (unroll_loops in its identity and checkpoint fingerprint, no fields added
  since) resumes under the current code with 0.1's initialisation (model_init="flax"), with
  either loop form, and ends with the uninterrupted run's noise; with today's default
  initialisation it is refused, naming the field."""
  from sem_jax.run.config import GenerateConfig, RUNTIME_FIELDS
  from sem_jax.run.legacy import LATER_FIELDS
  from sem_jax.commands.generate import generate_noise
  quiet = lambda *_: None
  cfg = tiny_config(npz_path, train_steps=4, checkpoint_every=2, unroll_loops=False,
                    model_init="flax")
  full = str(tmp_path / "full")
  generate_noise(cfg, full, devices=jax.devices()[:1], log=quiet)
  old_fields = lambda self: {k: v for k, v in self.to_dict().items()
                             if k not in RUNTIME_FIELDS - {"unroll_loops"}
                             and k not in LATER_FIELDS}
  wd = str(tmp_path / "old")
  with monkeypatch.context() as m:                 # the old identity, as 0.1.0 wrote it
    m.setattr(GenerateConfig, "result_fields", old_fields)
    generate_noise(cfg.replace(stop_after_step=2), wd, devices=jax.devices()[:1], log=quiet)
  import json
  assert json.load(open(os.path.join(wd, "run_config.json")))["config"]["unroll_loops"] is False
  with pytest.raises(SemJaxError, match="model_init: '<absent>' -> 'pytorch'"):
    generate_noise(cfg.replace(model_init="pytorch"), wd, devices=jax.devices()[:1], log=quiet)
  logs = []
  generate_noise(cfg.replace(unroll_loops=True), wd, devices=jax.devices()[:1], log=logs.append)
  assert any("resuming" in l and "step 2" in l for l in logs), logs
  np.testing.assert_array_equal(np.load(os.path.join(wd, "noise.npy")),
                                np.load(os.path.join(full, "noise.npy")))


def test_an_efficacy_benchmark_workdir_continues_as_a_study_and_a_foreign_one_is_refused(
    tmp_path):
  """A workdir the efficacy benchmark wrote (efficacy_config.json, runs inside) is claimed as a
  study workdir; a non-empty folder holding no study is refused and left untouched."""
  from sem_jax.run import legacy
  from sem_jax.suites.study import MARK_FILE, claim_study_workdir
  old = tmp_path / "eff"
  (old / "noise" / "sem").mkdir(parents=True)
  (old / legacy.EFFICACY_CONFIG).write_text("{}")
  claim_study_workdir(str(old))
  assert (old / MARK_FILE).exists()
  foreign = tmp_path / "photos"
  foreign.mkdir()
  (foreign / "cat.png").write_bytes(b"x")
  with pytest.raises(SemJaxError, match="holds no study"):
    claim_study_workdir(str(foreign))
  assert os.listdir(foreign) == ["cat.png"]


def test_fields_added_since_01_keep_old_identities():
  """model_init and tap_start count only away from 0.1's behaviour (and tap_start for TAP
  only); unused filter parameters sit at 0.1's values; a filtering victim or a revised model
  carries a revision; a stored 0.1 config reads back with 0.1's values."""
  from sem_jax.run.config import EvalConfig, GenerateConfig, from_dict
  g = GenerateConfig()
  assert g.result_fields()["model_init"] == "pytorch" and "tap_start" not in g.result_fields()
  assert "model_init" not in g.replace(model_init="flax").result_fields()
  tap = GenerateConfig(method="tap", tap_model="x")
  assert tap.result_fields()["tap_start"] == "uniform"
  assert "tap_start" not in tap.replace(tap_start="zero").result_fields()
  e = EvalConfig(model_init="flax")
  fields = e.result_fields()
  assert fields["gaussian_sigma"] == 1.0 and "bilateral_diameter" not in fields
  assert "filter_revision" not in fields and "model_revision" not in fields
  f = EvalConfig(defenses="gaussian").result_fields()
  assert f["filter_revision"] == 2 and f["gaussian_sigma"] == 0.0
  assert EvalConfig(model="vgg16_bn").result_fields()["model_revision"] == 2
  old = from_dict({"method": "tap", "tap_model": "x"})
  assert old.model_init == "flax" and old.tap_start == "zero"
  with pytest.raises(SemJaxError, match="unknown model_init 'torch'"):
    EvalConfig(model_init="torch").validate()


def test_a_recorded_later_field_at_its_old_value_is_the_same_run():
  """A workdir that recorded a later field at the value runs had before it existed is the run
  whose identity leaves the field out; the field away from that value is a different run."""
  from sem_jax.run.config import GenerateConfig
  from sem_jax.run.identity import identity_changes
  want = {"config": GenerateConfig(method="lsp").result_fields(), "data": {"sha256": "d"}}
  assert "lsp_patch" not in want["config"]
  recorded = {"config": {**want["config"], "lsp_patch": 8, "lsp_class_sep": 10.0},
              "data": {"sha256": "d"}}
  assert identity_changes(recorded, want) == []
  recorded["config"]["lsp_patch"] = 4
  assert identity_changes(recorded, want) == ["lsp_patch: 4 -> '<absent>'"]


def test_orphaned_write_failures_are_not_logged_but_other_asyncio_errors_are(caplog):
  """A failed checkpoint write leaves failed tasks, futures and gathers that nobody awaits;
  asyncio logs each one when it is collected. The run has already printed its one error line,
  so those records are dropped, and asyncio's other errors still reach the log."""
  import asyncio
  import gc
  import logging

  def orphan_failures():
    loop = asyncio.new_event_loop()

    async def fail():
      raise OSError(28, "No space left on device")

    async def main():
      asyncio.ensure_future(fail())
      gathered = asyncio.gather(fail(), fail())
      future = asyncio.get_running_loop().create_future()
      future.set_exception(OSError(28, "No space left on device"))
      await asyncio.sleep(0.01)
      del gathered, future

    loop.run_until_complete(main())
    loop.close()
    gc.collect()
    loop.call_exception_handler({"message": "an unrelated asyncio error"})
    found = [r.getMessage().split("\n", 1)[0] for r in caplog.records if r.name == "asyncio"]
    caplog.clear()
    return found

  asyncio_log = logging.getLogger("asyncio")
  before = list(asyncio_log.filters)    # an earlier in-process CLI run may have quietened it
  others = [f for f in before if not isinstance(f, runtime._OrphanedTasks)]
  try:
    asyncio_log.filters[:] = others
    caplog.set_level(logging.ERROR, logger="asyncio")
    unfiltered = orphan_failures()
    assert {"Task exception was never retrieved", "_GatheringFuture exception was never retrieved",
            "Future exception was never retrieved"} <= set(unfiltered), unfiltered
    runtime.quiet_orphaned_write_tasks()
    runtime.quiet_orphaned_write_tasks()
    assert len(asyncio_log.filters) == len(others) + 1
    assert orphan_failures() == ["an unrelated asyncio error"]
  finally:
    asyncio_log.filters[:] = before


def test_a_write_finishing_after_its_loop_closed_prints_nothing(capsys):
  """tensorstore calls loop.call_soon_threadsafe from its own thread when a write ends and
  prints the error through sys.excepthook (PyErr_Print); after a failed save the loop may be
  closed by then. That one error, off the main thread, is dropped; others still print."""
  import asyncio
  import sys
  import threading
  loop = asyncio.new_event_loop()
  loop.close()
  previous = sys.excepthook     # an earlier in-process CLI run may have wrapped it already
  try:
    sys.excepthook = sys.__excepthook__
    runtime.quiet_orphaned_write_tasks()
    runtime.quiet_orphaned_write_tasks()    # wraps once
    assert sys.excepthook.sem_jax_quiet
    assert sys.excepthook.__closure__[0].cell_contents is sys.__excepthook__

    def late_write(fail):
      try:
        fail()
      except Exception:
        sys.excepthook(*sys.exc_info())   # what PyErr_Print does on tensorstore's thread

    def other():
      raise RuntimeError("some other failure")
    for fail in (lambda: loop.call_soon_threadsafe(print), other):
      t = threading.Thread(target=late_write, args=(fail,))
      t.start()
      t.join()
    try:                                    # on the main thread it is not a late write
      loop.call_soon_threadsafe(print)
    except RuntimeError:
      sys.excepthook(*sys.exc_info())
    err = capsys.readouterr().err
    assert err.count("RuntimeError: Event loop is closed") == 1, err   # the main thread's
    assert "RuntimeError: some other failure" in err
  finally:
    sys.excepthook = previous

