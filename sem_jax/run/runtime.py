"""Process-level setup the command line does before anything compiles: reproducible GPU
kernels, the persistent XLA compilation cache, and joining a multi-process run
(``jax.distributed``).

Library users call these themselves (both are opt-in outside ``run.py``).
"""
from __future__ import annotations

import logging
import os
import sys
import threading

import jax

from sem_jax.errors import SemJaxError

CACHE_ENV = "SEM_JAX_COMPILATION_CACHE"     # a directory, or "off"
MIN_COMPILE_S = 0.3                         # cache compilations that took at least this long
MIN_COMPILE_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"   # overrides MIN_COMPILE_S
DETERMINISTIC_ENV = "SEM_JAX_GPU_DETERMINISTIC"   # "0": let XLA:GPU pick faster, racy kernels
DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"


def request_deterministic_gpu(env=None) -> bool:
  """Add ``--xla_gpu_deterministic_ops=true`` to ``XLA_FLAGS`` in ``env`` (default: this
  process's environment) unless the flags already name it or ``SEM_JAX_GPU_DETERMINISTIC=0``.

  Without it XLA:GPU may use atomics in reductions and scatters and pick autotuned kernels
  per run, so the same config and seed give different noise from run to run (on an H200,
  every noise table of a study; docs/performance.md). XLA reads the flag when it
  creates the GPU backend, so this must run before the first computation; CPU and TPU
  ignore it. Returns whether the flag was added."""
  env = os.environ if env is None else env
  flags = env.get("XLA_FLAGS", "")
  if "xla_gpu_deterministic_ops" in flags or env.get(DETERMINISTIC_ENV, "1").strip() == "0":
    return False
  env["XLA_FLAGS"] = f"{flags} {DETERMINISTIC_FLAG}".strip()
  return True


def loops_unrolled(unroll_loops) -> bool:
  """Resolve a config's ``unroll_loops`` (True / False / "true" / "false" / "auto"): "auto"
  unrolls on CPU only (XLA:CPU runs convolutions much slower inside a while loop; on GPU and
  TPU rolled loops run as fast and compile several times faster)."""
  if isinstance(unroll_loops, bool):
    return unroll_loops
  value = str(unroll_loops).strip().lower()
  if value == "auto":
    return jax.default_backend() == "cpu"
  return value == "true"


def default_cache_dir() -> str:
  """``$SEM_JAX_COMPILATION_CACHE``, else ``$XDG_CACHE_HOME/sem_jax/jax_compilation_cache``
  (``~/.cache/...``)."""
  if os.environ.get(CACHE_ENV):
    return os.environ[CACHE_ENV]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "sem_jax", "jax_compilation_cache")


def enable_compilation_cache(path: str | None = None) -> str | None:
  """Turn on JAX's persistent compilation cache in ``path`` (default [`default_cache_dir`][default_cache_dir]),
  so a resumed run or a second run of a config loads its compiled steps instead of compiling
  them again. A cache directory the user set for JAX itself (``JAX_COMPILATION_CACHE_DIR``)
  wins; ``off`` disables. Returns the directory in use, or None."""
  if jax.config.jax_compilation_cache_dir:
    return jax.config.jax_compilation_cache_dir
  path = path or default_cache_dir()
  if path.strip().lower() in ("off", "none", "0", "false"):
    return None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise SemJaxError(f"cannot create the compilation cache {path} ({e.strerror or e}); set "
                      f"{CACHE_ENV} to a writable directory or to 'off'") from None
  jax.config.update("jax_compilation_cache_dir", path)
  if MIN_COMPILE_ENV not in os.environ:   # JAX's own variable, when set, is the user's choice
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
  return path


def detected_cluster(env=None) -> str | None:
  """The multi-process launcher this process runs under, when it starts more than one process
  and ``jax.distributed.initialize()`` can read everything from it: ``slurm`` (srun with
  several tasks), ``openmpi`` (mpirun) or ``tpu-pod`` (a Cloud TPU VM slice of several hosts).
  None on a plain machine."""
  env = os.environ if env is None else env
  if all(k in env for k in ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS",
                            "SLURM_PROCID", "SLURM_LOCALID")) and int(env["SLURM_NTASKS"]) > 1:
    return "slurm"
  if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
    return "openmpi"
  hosts = env.get("TPU_WORKER_HOSTNAMES", "")
  if "TPU_WORKER_ID" in env and len([h for h in hosts.split(",") if h.strip()]) > 1:
    return "tpu-pod"
  return None


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, env=None) -> str | None:
  """Join a multi-process run; return how (``explicit``, a [`detected_cluster`][detected_cluster] name), or
  None for a single process.

  Explicit: arguments or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID.
  Otherwise a detected launcher lets ``jax.distributed.initialize()`` find its own parameters,
  so the bare command works on every worker of a TPU pod or a SLURM job.
  """
  env = os.environ if env is None else env
  coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS")
  if coordinator:
    num = num_processes if num_processes is not None else env.get("JAX_NUM_PROCESSES")
    pid = process_id if process_id is not None else env.get("JAX_PROCESS_ID")
    if num is None or pid is None:
      raise SemJaxError("multi-process run needs the process count and id "
                        "(--num_processes/--process_id or JAX_NUM_PROCESSES/JAX_PROCESS_ID)")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=int(num),
                               process_id=int(pid))
    return "explicit"
  if num_processes is not None or process_id is not None:
    raise SemJaxError("--num_processes/--process_id need --coordinator_address (or "
                      "JAX_COORDINATOR_ADDRESS)")
  cluster = detected_cluster(env)
  if cluster:
    try:
      jax.distributed.initialize()
    except Exception as e:  # the launcher's variables are incomplete or the network is down
      raise SemJaxError(f"detected a {cluster} launch but jax.distributed.initialize() failed "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); pass "
                        "--coordinator_address/--num_processes/--process_id") from None
  return cluster


class _OrphanedTasks(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    first = str(record.msg).split("\n", 1)[0]
    return not first.endswith(" exception was never retrieved")


def _late_loop_callback(exc_type, exc, tb) -> bool:
  """True for the error a write finishing after its event loop closed raises off the main
  thread: RuntimeError("Event loop is closed") from asyncio's ``_check_closed``."""
  if not (exc_type is RuntimeError and str(exc) == "Event loop is closed"
          and threading.current_thread() is not threading.main_thread()):
    return False
  while tb is not None and tb.tb_next is not None:
    tb = tb.tb_next
  return tb is not None and tb.tb_frame.f_code.co_name == "_check_closed"


def _quiet_excepthook(previous):
  def hook(exc_type, exc, tb):
    if not _late_loop_callback(exc_type, exc, tb):
      previous(exc_type, exc, tb)
  hook.sem_jax_quiet = True
  return hook


def quiet_orphaned_write_tasks() -> None:
  """Drop what a failed checkpoint write's other concurrent writes print after the run has
  reported the failure in its one error line (a full disk): asyncio's "<Task|Future|
  _GatheringFuture> exception was never retrieved" records for the writes and gathers that
  are garbage-collected unawaited, and the "Event loop is closed" traceback tensorstore prints
  (through ``sys.excepthook``) when a write finishes on its own thread after orbax's loop has
  closed. Other exceptions reach the previous hook unchanged."""
  logger = logging.getLogger("asyncio")
  if not any(isinstance(f, _OrphanedTasks) for f in logger.filters):
    logger.addFilter(_OrphanedTasks())
  if not getattr(sys.excepthook, "sem_jax_quiet", False):
    sys.excepthook = _quiet_excepthook(sys.excepthook)
