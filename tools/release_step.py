"""Time the authors' PyTorch release's outer step as `run.py bench` times ours (issue: side by
side on one GPU). Imports the release's own classes from a folder given at run time (its
``attacks`` and ``models`` packages, written out by tools/release_export.sh; no line of the
release is in this file) and runs, on random CIFAR-shaped data, what one step of its
``generate_stable_em.py`` (SEM) or ``generate_robust_em.py`` (REM) main loop runs:

  1. the defender's ``perturb`` (SEM: ``StablePGDDefender``, K steps of J samples, each a
     random offset in the ρa ball; REM: ``RobustMinimaxPGDDefender``, each sample a PGD
     attack of ``--atk-steps``), on the release's per-sample flip + pad-4 crop + normalise;
  2. the surrogate's PGD-AT: the release's ``PGDAttacker`` (10 steps of 0.8 levels at ρa 4) on
     the noised, augmented batch, then an SGD step (lr 0.1, momentum 0.9, weight decay 5e-4)
     of its ``resnet18`` in train mode.

Prints one JSON line: the median seconds per outer step over ``--steps`` timed steps after
``--warmup`` (the device synchronised around each) and of its ``perturb`` alone (what the
release's final pass repeats over every batch), images/s, peak device memory, torch and
CUDA versions, the device, the precision (float32 with PyTorch's defaults, TF32 flags stated;
or the whole step under ``torch.autocast(dtype=torch.bfloat16)``) and the settings.

  python tools/release_step.py --release third_party/sem_release --method sem \\
      --precision bfloat16 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def parse(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--release", required=True, help="folder holding the release's attacks/ and models/")
  p.add_argument("--method", choices=("sem", "rem"), default="sem")
  p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
  p.add_argument("--device", default="", help="cuda or cpu (default: cuda when available)")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--image-size", type=int, default=32)
  p.add_argument("--classes", type=int, default=10)
  p.add_argument("--K", type=int, default=10, help="defensive PGD steps [10]")
  p.add_argument("--J", type=int, default=5, help="samples per step (samp_num) [5]")
  p.add_argument("--atk-steps", type=int, default=10, help="PGD steps of the surrogate's "
                 "adversary, and of REM's per-sample attack [10]")
  p.add_argument("--radius", type=float, default=8.0, help="ρu, levels [8]")
  p.add_argument("--step-size", type=float, default=1.6, help="levels [1.6]")
  p.add_argument("--atk-radius", type=float, default=4.0, help="ρa, levels [4]")
  p.add_argument("--atk-step-size", type=float, default=0.8, help="levels [0.8]")
  p.add_argument("--steps", type=int, default=10, help="timed outer steps")
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--json", default="", help="also write the line to this file")
  return p.parse_args(argv)


def release_modules(folder: str):
  """The release's ``attacks`` and ``models`` packages, imported from ``folder``."""
  for sub in ("attacks", "models"):
    if not os.path.isfile(os.path.join(folder, sub, "__init__.py")):
      sys.exit(f"error: {folder} holds no {sub}/__init__.py: write the release out with "
               "tools/release_export.sh MIRROR_GIT_DIR " + folder)
  sys.path.insert(0, os.path.abspath(folder))
  import attacks   # noqa: E402  (the release's)
  import models    # noqa: E402
  return attacks, models


class PerSampleTransform:
  """The release's training transform on pixel-level tensors (N, C, H, W) in [0, 255]: per
  image, a horizontal flip with probability 1/2 and a ``size`` crop of the image zero-padded
  by ``pad``, then (x − 127.5) / 255; one image at a time, as its ``ElementWiseTransform``
  applies torchvision's ``Compose``. Differentiable in x."""

  def __init__(self, torch, size: int, pad: int = 4):
    self.torch, self.size, self.pad = torch, size, pad

  def __call__(self, x):
    torch = self.torch
    out = []
    for img in x:
      if torch.rand(()) < 0.5:
        img = torch.flip(img, dims=(-1,))
      padded = torch.nn.functional.pad(img, (self.pad,) * 4)
      top, left = (int(v) for v in torch.randint(0, 2 * self.pad + 1, (2,)))
      out.append(padded[:, top:top + self.size, left:left + self.size])
    return (torch.stack(out) - 127.5) / 255.0


def build(args, torch, attacks, models, device):
  """The release's model, SGD, loss, defender and attacker with the paper's settings."""
  model = models.resnet18(3, args.classes).to(device)
  optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
  criterion = torch.nn.CrossEntropyLoss()
  trans = PerSampleTransform(torch, args.image_size)
  common = dict(samp_num=args.J, trans=trans, radius=args.radius, steps=args.K,
                step_size=args.step_size, random_start=True, atk_radius=args.atk_radius,
                atk_steps=args.atk_steps, atk_step_size=args.atk_step_size,
                atk_random_start=True)
  defender = (attacks.StablePGDDefender(**common) if args.method == "sem"
              else attacks.RobustMinimaxPGDDefender(**common))
  attacker = attacks.PGDAttacker(radius=args.atk_radius, steps=args.atk_steps,
                                 step_size=args.atk_step_size, random_start=True,
                                 norm_type="l-infty", ascending=True)
  return model, optim, criterion, trans, defender, attacker


def outer_step(torch, model, optim, criterion, trans, defender, attacker, x, y, sync, split):
  """One step of the release's generation loop: craft the batch's noise, store it as int8
  levels on the host (the release's numpy table) and bring it back, then PGD-AT + SGD on the
  noised, augmented batch."""
  import numpy as np
  t = time.perf_counter()
  delta = defender.perturb(model, criterion, x, y)
  sync()
  split.append(time.perf_counter() - t)
  stored = (delta.cpu().numpy() * 255).round().astype(np.int8)
  def_x = trans(x + torch.tensor(stored).to(x.device)).clamp_(-0.5, 0.5)
  adv_x = attacker.perturb(model, criterion, def_x, y)
  model.train()
  loss = criterion(model(adv_x), y)
  optim.zero_grad()
  loss.backward()
  optim.step()
  return float(loss.detach())


def main(argv=None) -> dict:
  args = parse(argv)
  import torch
  attacks, models = release_modules(args.release)
  device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
  torch.manual_seed(args.seed)
  model, optim, criterion, trans, defender, attacker = build(args, torch, attacks, models, device)
  n, s = args.batch, args.image_size
  x = torch.randint(0, 256, (n, 3, s, s), device=device).float()
  y = torch.randint(0, args.classes, (n,), device=device)
  cuda = device.type == "cuda"
  sync = torch.cuda.synchronize if cuda else (lambda: None)
  autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
              if args.precision == "bfloat16" else None)
  times, losses, perturb = [], [], []
  for i in range(args.warmup + args.steps):
    if cuda and i == args.warmup:
      torch.cuda.reset_peak_memory_stats()
    sync()
    t = time.perf_counter()
    if autocast is not None:
      with autocast:
        losses.append(outer_step(torch, model, optim, criterion, trans, defender, attacker, x, y,
                                 sync, perturb))
    else:
      losses.append(outer_step(torch, model, optim, criterion, trans, defender, attacker, x, y,
                               sync, perturb))
    sync()
    if i >= args.warmup:
      times.append(time.perf_counter() - t)
  median = statistics.median(times)
  out = {
      "side": "release", "method": args.method, "precision": args.precision,
      "median_s": median, "images_per_s": n / median, "steps_timed": len(times),
      "perturb_median_s": statistics.median(perturb[args.warmup:]),
      "step_times_s": times, "final_loss": losses[-1],
      "peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
      "device": torch.cuda.get_device_name(device) if cuda else "cpu",
      "torch": torch.__version__, "cuda": torch.version.cuda,
      "cudnn": torch.backends.cudnn.version() if cuda else None,
      "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
      "tf32_conv": torch.backends.cudnn.allow_tf32,
      "threads": torch.get_num_threads(),
      "transform": "per-sample flip + pad-4 crop + normalise, one image at a time",
      "settings": {k: getattr(args, k) for k in ("batch", "image_size", "classes", "K", "J",
                                                  "atk_steps", "radius", "step_size",
                                                  "atk_radius", "atk_step_size", "warmup")},
  }
  line = json.dumps(out)
  print(line)
  if args.json:
    with open(args.json, "w") as f:
      f.write(line + "\n")
  return out


if __name__ == "__main__":
  main()
