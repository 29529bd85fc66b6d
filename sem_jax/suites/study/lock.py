"""A study workdir: its mark, and the lock one study command holds on it."""
from __future__ import annotations

import contextlib
import fcntl
import os

from sem_jax.errors import SemJaxError
from sem_jax.files import atomic
from sem_jax.run import legacy
from sem_jax.run.identity import STUDY_MARK

MARK_FILE = STUDY_MARK
LOCK_FILE = ".sem_jax_study.lock"   # held (flock) by the study command using the workdir

@contextlib.contextmanager
def workdir_lock(workdir: str):
  """Claim ``workdir`` as a study workdir ([`claim_study_workdir`][claim_study_workdir]) and hold its lock: a
  second study command on the same workdir (which would run the same pieces twice at once and
  corrupt them) stops with a one-line error. An advisory lock of the OS (flock), released
  when the process ends, however it ends."""
  claim_study_workdir(workdir)
  f = open(os.path.join(workdir, LOCK_FILE), "a+")
  try:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      f.seek(0)
      holder = f.read().strip() or "another process"
      raise SemJaxError(f"workdir {workdir} is in use by another study command ({holder}); "
                        "wait for it to finish or stop it") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}")
    f.flush()
    yield
  finally:
    f.close()


def claim_study_workdir(workdir: str) -> None:
  """Make ``workdir`` a study workdir, or check that it is one; refuse any other folder."""
  atomic.make_dir(workdir)
  mark = os.path.join(workdir, MARK_FILE)
  if not os.path.exists(mark):
    foreign = set(os.listdir(workdir)) - {LOCK_FILE}
    if foreign and not any(os.path.exists(os.path.join(workdir, f))
                           for f in (legacy.STUDY_CONFIG, legacy.EFFICACY_CONFIG)):
      raise SemJaxError(f"workdir {workdir} is not empty and holds no study; use a new --workdir")
    atomic.write_json(mark, {"what": "sem_jax study workdir"})
