"""A real full disk: the demo's kind of run on a tmpfs smaller than its workdir. One `error:`
line (no traceback, not even from orbax's background threads), and the workdir, copied to a
roomy disk, resumes to an uninterrupted run's noise, bit for bit. Needs root to mount the tmpfs;
elsewhere it is skipped, and the injected-ENOSPC tests of test_full_disk.py cover every write
site."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, subprocess_env, tiny_config, write_config_file

RUN = os.path.join(REPO, "run.py")


def _du(path: str) -> int:
  """Bytes the files under ``path`` occupy, in 4 KiB blocks (as tmpfs counts them)."""
  return sum(-(-os.path.getsize(os.path.join(d, f)) // 4096) * 4096
             for d, _, fs in os.walk(path) for f in fs)


@pytest.fixture
def small_tmpfs(tmp_path):
  """A factory: mount a tmpfs of ``kib`` KiB under tmp_path (unmounted afterwards)."""
  if os.geteuid() != 0:
    pytest.skip(f"mounting a small tmpfs needs root (running as uid {os.geteuid()})")
  mounted = []

  def mount(kib: int) -> str:
    d = tmp_path / f"small{kib}"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode:
      pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
    mounted.append(d)
    return str(d)
  yield mount
  for d in mounted:
    subprocess.run(["umount", str(d)], check=False)


@pytest.mark.parametrize("share", [0.4, 0.8])
def test_a_run_on_a_too_small_filesystem_is_one_line_and_resumes_elsewhere(
    share, npz_path, tmp_path, small_tmpfs):
  cfg = tiny_config(npz_path, train_steps=6, checkpoint_every=2)
  conf = write_config_file(tmp_path / "cfg.py", cfg)
  run = lambda wd: subprocess.run([sys.executable, RUN, "generate", "--config", conf,
                                   "--workdir", wd], env=subprocess_env(1), capture_output=True,
                                  text=True, timeout=600)
  ref = str(tmp_path / "ref")
  assert run(ref).returncode == 0
  small = os.path.join(small_tmpfs(max(16, int(share * _du(ref) / 1024))), "run")
  r = run(small)
  err = r.stderr.strip().splitlines()
  assert r.returncode == 2 and len(err) == 1, r.stderr[-3000:]
  assert err[0].startswith(f"error: cannot write {small}") and "no space left on the device" in err[0]
  assert not os.path.exists(os.path.join(small, "manifest.json"))
  roomy = str(tmp_path / "roomy")
  shutil.copytree(small, roomy)
  r = run(roomy)
  assert r.returncode == 0, r.stderr[-3000:]
  assert open(os.path.join(roomy, "noise.npy"), "rb").read() == \
      open(os.path.join(ref, "noise.npy"), "rb").read()
