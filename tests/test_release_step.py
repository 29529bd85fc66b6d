"""tools/release_step.py, the harness that times the authors' PyTorch release's outer step: its
per-sample transform is the release's flip + pad-4 crop + normalise, the release's own defender
keeps its noise in the ball, and the harness runs end to end in both precisions at tiny sizes.
Skipped where torch is not installed (CI) or the release is not written out
(tools/release_export.sh; SEM_RELEASE_DIR names another folder)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO as ROOT, load_tool

torch = pytest.importorskip("torch")

RELEASE = os.environ.get("SEM_RELEASE_DIR", os.path.join(ROOT, "third_party", "sem_release"))
needs_release = pytest.mark.skipif(
    not os.path.isfile(os.path.join(RELEASE, "attacks", "__init__.py")),
    reason="the release is not written out (bash tools/release_export.sh MIRROR)")


def test_the_transform_is_a_flip_and_a_padded_crop_then_the_releases_normalisation():
  tool = load_tool("release_step")
  torch.manual_seed(0)
  x = torch.randint(0, 256, (16, 3, 8, 8)).float()
  out = tool.PerSampleTransform(torch, 8, pad=4)(x)
  assert out.shape == x.shape and float(out.min()) >= -0.5 and float(out.max()) <= 0.5
  flips = 0
  for img, got in zip(x.numpy(), out.numpy()):
    want = got * 255.0 + 127.5
    found = []
    for flip in (False, True):
      v = np.pad(img[:, :, ::-1] if flip else img, ((0, 0), (4, 4), (4, 4)))
      found += [flip for a in range(9) for b in range(9)
                if np.allclose(v[:, a:a + 8, b:b + 8], want, atol=1e-3)]
    assert found, "an output that is no crop of the image or its flip"
    flips += found[0]
  assert 0 < flips < 16        # both branches drawn
  xg = x.clone().requires_grad_()
  tool.PerSampleTransform(torch, 8, pad=4)(xg).sum().backward()
  g = xg.grad.numpy() * 255.0           # each kept pixel passes 1/255
  assert set(np.unique(np.round(g, 4))) <= {0.0, 1.0} and g.sum() > 0


@needs_release
def test_the_releases_defender_keeps_its_noise_in_the_ball():
  tool = load_tool("release_step")
  args = tool.parse(["--release", RELEASE, "--batch", "4", "--K", "2", "--J", "1",
                     "--atk-steps", "1", "--device", "cpu"])
  attacks, models = tool.release_modules(RELEASE)
  model, _, criterion, _, defender, _ = tool.build(args, torch, attacks, models, "cpu")
  x = torch.randint(0, 256, (4, 3, 32, 32)).float()
  delta = defender.perturb(model, criterion, x, torch.arange(4))
  assert float(delta.abs().max()) * 255 <= 8 + 1e-4 and float(delta.abs().max()) > 0


@needs_release
@pytest.mark.parametrize("method, precision", [("sem", "float32"), ("sem", "bfloat16"),
                                               ("rem", "float32")])
def test_the_harness_times_the_releases_step(tmp_path, method, precision):
  out = tmp_path / "r.json"
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", "release_step.py"), "--release", RELEASE,
       "--method", method, "--precision", precision, "--batch", "2", "--K", "1", "--J", "1",
       "--atk-steps", "1", "--steps", "2", "--warmup", "1", "--device", "cpu",
       "--json", str(out)], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  line = json.loads(proc.stdout.strip().splitlines()[-1])
  assert line == json.loads(out.read_text())
  assert line["side"] == "release" and line["method"] == method
  assert line["precision"] == precision and line["steps_timed"] == 2
  assert line["median_s"] > 0 and line["images_per_s"] == pytest.approx(2 / line["median_s"])
  assert 0 < line["perturb_median_s"] < max(line["step_times_s"])
  assert np.isfinite(line["final_loss"]) and line["torch"] == torch.__version__


def test_a_folder_without_the_release_is_one_line(tmp_path):
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "release_step.py"),
                         "--release", str(tmp_path)], capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path} holds no attacks/")
