"""A full disk is one line naming the path and the free space; nothing half-written keeps a final
name, the last good checkpoint stays, and the same command resumes once there is room. The
ENOSPC is injected at each write site, so these run on any machine."""
import errno
import os

import numpy as np
import pytest

from conftest import tiny_config
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic


def _full(*_, **__):
  raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("write", [
    lambda p: atomic.write_json(p, {"a": 1}),
    lambda p: atomic.write_text(p, "x" * 100),
    lambda p: atomic.save_npy(p, np.zeros((4, 4), np.int8)),
])
def test_a_full_disk_during_a_file_write_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch,
                                                                             write):
  path = str(tmp_path / "f")
  open(path, "w").write("before")
  monkeypatch.setattr(os, "fsync", _full)
  with pytest.raises(SemJaxError) as e:
    write(path)
  msg = str(e.value)
  assert "\n" not in msg and f"cannot write {path}: no space left on the device (" in msg
  assert "MiB free" in msg and "re-run the same command" in msg
  assert open(path).read() == "before" and os.listdir(tmp_path) == ["f"]   # no temporary left


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_run_resumes(npz_path, tmp_path,
                                                                     monkeypatch, capsys):
  """ENOSPC as orbax reports it (a ValueError carrying tensorstore's text) at the step-4 save:
  one error line, step 2 stays restorable, and the rerun ends with an uninterrupted run's noise."""
  from sem_jax.cli import main
  from sem_jax.commands.generate import generate_noise
  from sem_jax.run import checkpoint as C
  quiet = lambda *_: None
  cfg = tiny_config(npz_path, train_steps=6, checkpoint_every=2)
  ref = str(tmp_path / "ref")
  generate_noise(cfg, ref, log=quiet)
  wd = str(tmp_path / "full")
  real = C.Checkpoints.save

  def orbax_full(*_, **__):
    raise ValueError('RESOURCE_EXHAUSTED: Error writing "noise/0.0.0.0" in OCDBT database: '
                     'No space left on device')

  def save(self, step, state, meta):   # the real save, whose orbax write fails at step 4
    if step == 4:
      monkeypatch.setattr(self._mngr, "save", orbax_full)
    return real(self, step, state, meta)
  monkeypatch.setattr(C.Checkpoints, "save", save)
  with pytest.raises(SemJaxError) as e:
    generate_noise(cfg, wd, log=quiet)
  msg = str(e.value)
  assert "\n" not in msg and "no space left on the device" in msg
  assert "the last intact checkpoint stays" in msg and "/4" in msg
  assert not os.path.exists(os.path.join(wd, "manifest.json"))
  monkeypatch.setattr(C.Checkpoints, "save", real)
  logs = []
  generate_noise(cfg, wd, log=logs.append)
  assert any("resuming" in l and "step 2" in l for l in logs), logs
  assert open(os.path.join(wd, "noise.npy"), "rb").read() == \
      open(os.path.join(ref, "noise.npy"), "rb").read()
