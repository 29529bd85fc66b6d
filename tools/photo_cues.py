"""How much of each unseen set's class a patch's low-order statistics carry (docs/study.md, 4).

  python tools/photo_cues.py                     # the study's sets; needs scikit-learn, scikit-image
  python tools/photo_cues.py folder PHOTOS 64    # your photos, as configs/folder/sem.py reads them
  python tools/photo_cues.py npz FILE.npz        # your arrays, as configs/npz/sem.py reads them

For each dataset, a linear classifier (multinomial logistic regression on standardised
features, fitted on the training split) is scored on the test split with three feature sets
that say nothing about shape: each channel's mean level; each channel's mean and standard
deviation; each channel's 8-bin histogram of levels (0..255). Bounded noise of ±ρu levels
moves a patch's mean by at most ρu, so a class that such a classifier already separates from
a mean shift of tens of levels is one that error-minimizing noise of ρu 8 cannot hide from a
victim by giving it an easier feature. Prints a Markdown table (test accuracy, %).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def features(x, kind: str) -> np.ndarray:
  """(N, H, W, C) levels -> (N, F): "mean" (C), "mean+std" (2C) or "histogram" (8C)."""
  x = np.asarray(x, np.float64)
  if kind == "mean":
    return x.mean((1, 2))
  if kind == "mean+std":
    return np.concatenate([x.mean((1, 2)), x.std((1, 2))], 1)
  bins = np.minimum(x // 32, 7).astype(np.int64)           # 8 bins of 32 levels
  counts = (bins[..., None] == np.arange(8)).sum((1, 2))   # (N, C, 8)
  return counts.reshape(len(x), -1) / (x.shape[1] * x.shape[2])


def probe(train, y_train, test, y_test, kind: str) -> float:
  """Test accuracy of a logistic regression on `features(., kind)`."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
  clf.fit(features(train, kind), y_train)
  return float(clf.score(features(test, kind), y_test))


def datasets():
  """(name, train images, train labels, test images, test labels) of the unseen sets and the
  variants of tools/variant_data.py that change their statistics or size."""
  import variant_data
  p, greys = variant_data.photos_grey()   # skimage_photos, and its grey variants
  d, d32_train, d32_test = variant_data.digits32()
  yield "skimage_photos (colour, 8 classes)", p.train_images, p.train_labels, p.test_images, p.test_labels
  for k, (tr, te) in greys.items():
    yield f"photos_{k}", tr, p.train_labels, te, p.test_labels
  yield "sklearn_digits (16 px, 10 classes)", d.train_images, d.train_labels, d.test_images, d.test_labels
  yield "digits32", d32_train, d.train_labels, d32_test, d.test_labels


def yours(name: str, data_dir: str, image_size: int = 0):
  """A dataset of the user's, with the split the generate configs use (folder: a seeded 20 %
  of each class is the test split)."""
  from sem_jax.data.sources import load_dataset
  d = load_dataset(name, data_dir, image_size=image_size, log=lambda _: None)
  chance = 100 / d.num_classes
  return [(f"{data_dir} ({d.num_classes} classes, chance {chance:.1f})", d.train_images,
           d.train_labels, d.test_images, d.test_labels)]


def main(argv=()):
  kinds = ("mean", "mean+std", "histogram")
  if argv and argv[0] not in ("folder", "npz") or len(argv) not in (0, 2, 3):
    sys.exit("usage: python tools/photo_cues.py [folder DIR [SIZE] | npz FILE]")
  sets = yours(argv[0], argv[1], int(argv[2]) if len(argv) > 2 else 0) if argv else datasets()
  print("| data | " + " | ".join(kinds) + " |")
  print("| --- |" + " --- |" * len(kinds))
  for name, xtr, ytr, xte, yte in sets:
    accs = [probe(xtr, np.asarray(ytr), xte, np.asarray(yte), k) for k in kinds]
    print(f"| {name} | " + " | ".join(f"{100 * a:.1f}" for a in accs) + " |")


if __name__ == "__main__":
  try:
    main(sys.argv[1:])
  except Exception as e:   # a missing file, an unreadable folder: one line, not a traceback
    from sem_jax.errors import SemJaxError
    if not isinstance(e, (SemJaxError, OSError)):
      raise
    sys.exit(f"error: {e}")
