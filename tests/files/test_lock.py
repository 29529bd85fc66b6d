"""The workdir lock: a second command on a folder is refused in one line naming the holder; a
lock left by a killed process is taken over (and said); a clean release leaves nothing to say."""
import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO, tiny_config
from sem_jax.errors import SemJaxError
from sem_jax.files.lock import WorkdirLock, lock_path

_HOLD = """
import sys, time
from sem_jax.files.lock import WorkdirLock
lock = WorkdirLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def _holder(directory):
  p = subprocess.Popen([sys.executable, "-c", _HOLD, directory], stdout=subprocess.PIPE,
                       text=True, env={**os.environ, "PYTHONPATH": REPO})
  assert p.stdout.readline().strip() == "held"
  return p


def test_a_second_command_is_refused_naming_the_holder_and_a_killed_ones_lock_is_taken(
    npz_path, tmp_path, capsys):
  from sem_jax.cli import main
  from sem_jax.commands.generate import generate_noise
  wd = str(tmp_path / "run")
  p = _holder(wd)
  try:
    with pytest.raises(SemJaxError, match=rf"workdir {wd} is in use by another sem_jax command "
                                          rf"\(host .+, pid {p.pid}, since .+\)"):
      generate_noise(tiny_config(npz_path, train_steps=1), wd, log=lambda *_: None)
    assert not os.path.exists(wd)           # refused before anything was written
    out = str(tmp_path / "out")
    with pytest.raises(SemJaxError, match="in use by another"):
      WorkdirLock(wd, "export directory").acquire()
    assert main(["export", "--noise", wd, "--format", "npy", "--out", out]) == 2
  finally:
    p.send_signal(signal.SIGKILL)
    p.wait()
  logs = []
  generate_noise(tiny_config(npz_path, train_steps=1), wd, log=logs.append)
  assert any(l.startswith(f"took over the lock of workdir {wd}") and f"pid {p.pid}" in l
             for l in logs), logs
  logs.clear()
  generate_noise(tiny_config(npz_path, train_steps=1), wd, log=logs.append)   # finished: reread
  assert not any("took over" in l for l in logs)
  assert os.path.exists(lock_path(wd)) and not os.path.exists(os.path.join(wd, ".sem_jax.lock"))


def test_the_lock_is_beside_the_folder_and_urls_are_not_locked(tmp_path):
  d = tmp_path / "a" / "run"
  assert lock_path(str(d)) == str(tmp_path / "a" / ".run.sem_jax.lock")
  assert lock_path(str(d) + "/") == lock_path(str(d))
  with WorkdirLock(str(d)):
    with pytest.raises(SemJaxError, match="in use"):
      WorkdirLock(str(d)).acquire()
  with WorkdirLock(str(d)):   # released on exit: free again, and no takeover to report
    pass
  with WorkdirLock("gs://bucket/run"):
    pass
