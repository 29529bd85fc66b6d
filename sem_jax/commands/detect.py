"""``detect``: how detectable is a published set? UDP's simple-network statistics
([`sem_jax.core.thief.detect`][sem_jax.core.thief.detect]) on a finished generate run's published training images.

Reports, for a linear model and a two-layer MLP: the training accuracy each reaches on the
published images with their labels and on the clean images, the clean test accuracy of
each (poisons are shortcuts: the network trained on the published set fails on clean test
images), and the held-out accuracy of a published-vs-clean classifier (0.5:
indistinguishable). Writes ``--out`` (JSON); never overwrites a file.
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from sem_jax.core.thief import detect as UDP
from sem_jax.data import rows as R
from sem_jax.errors import SemJaxError
from sem_jax.files import atomic, fs
from sem_jax.run.artifacts import load_run

SHORTCUT_GAP = 0.10    # clean test accuracy this much lower after training on the published
                       # set than after training on clean data: the set looks poisoned
SEPARABLE = 0.75       # a published-vs-clean detector this accurate: the noise is visible


def detect(noise_dir: str, out: str | None = None, *, steps: int = 300, seed: int = 0,
           max_images: int = 10000, log: Callable[[str], None] = print) -> dict:
  """UDP's statistics of the run in ``noise_dir`` on at most ``max_images`` seeded training
  images; written to ``out`` when given (refused if it exists)."""
  if out and fs.exists(out):
    raise SemJaxError(f"{out} exists; refusing to overwrite it: choose a new --out")
  if steps < 1 or max_images < 2:
    raise SemJaxError(f"detect needs steps >= 1 and max_images >= 2, got {steps}, {max_images}")
  run = load_run(noise_dir, what="generate run")
  ds = run.dataset
  n = ds.num_train
  rng = np.random.default_rng(seed)
  idx = np.sort(rng.choice(n, min(n, max_images), replace=False))
  clean = np.asarray(ds.train_images[idx])
  published = R.materialize(R.Subset(R.Protected(ds.train_images, run.noise), idx))
  labels = np.asarray(ds.train_labels)[idx]
  key = jax.random.key(seed)
  result = {"noise_dir": fs.abspath(noise_dir), "method": run.manifest.method,
            "dataset": ds.name, "images": int(len(idx)), "steps": steps, "seed": seed,
            "detectors": {}}
  for i, kind in enumerate(UDP.DETECTORS):
    k = jax.random.fold_in(key, i)
    test = (ds.test_images, ds.test_labels)
    pub, pub_test = UDP.fit(k, published, labels, ds.num_classes, kind, *test, steps=steps)
    cln, cln_test = UDP.fit(k, clean, labels, ds.num_classes, kind, *test, steps=steps)
    sep = UDP.split_detector(jax.random.fold_in(k, 1), published, clean, kind, steps)
    result["detectors"][kind] = {"published_fit": pub, "clean_fit": cln,
                                 "published_test": pub_test, "clean_test": cln_test,
                                 "gap": cln_test - pub_test, "published_vs_clean": sep}
    log(f"{kind}: fits the published set to {pub:.3f} (clean {cln:.3f}); then scores "
        f"{pub_test:.3f} on clean test images (trained on clean: {cln_test:.3f}); tells "
        f"published from clean at {sep:.3f} (chance 0.5)")
  d = result["detectors"]
  result["shortcut"] = max(v["gap"] for v in d.values()) > SHORTCUT_GAP
  result["separable"] = max(v["published_vs_clean"] for v in d.values()) > SEPARABLE
  log(f"{run.manifest.method} on {ds.name}: "
      + ("looks poisoned (what a simple network learns from it fails on clean images)"
         if result["shortcut"] else "no shortcut a simple network finds")
      + ("; the noise is visible to a detector" if result["separable"] else ""))
  if out:
    atomic.write_json(out, result)
    log(f"-> {out}")
  return result
