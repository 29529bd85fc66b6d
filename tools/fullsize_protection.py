"""Does protection survive full-size publishing? (docs/photos.md, "Full-size exports")

  python tools/fullsize_protection.py WORKDIR [PER_CLASS] [IMAGE_SIZE]

Builds a folder of "photos" from the MNIST-5k digits (PER_CLASS per class, default 100; each
digit upsampled to its own random size of 48-112 px; a third saved as JPEG of quality 95, the
rest as PNG), makes SEM noise for it with configs/folder/sem.py at IMAGE_SIZE (default 32), and
exports it three ways: thumbnails (png at IMAGE_SIZE), full size (PNG), and full size with the
JPEG sources as JPEG of quality 90. A data thief reads each export, resizes every file to
IMAGE_SIZE (Pillow bilinear, as the folder loader does) and trains the default victim of
``evaluate`` (the small CNN) on the photos no model saw held out; the clean victim trains on the
clean thumbnails. Prints a Markdown table and writes WORKDIR/fullsize_protection.json.
"""
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def make_digit_photos(root: str, per_class: int, seed: int = 0) -> None:
  from PIL import Image
  from sem_jax.data.sources import load_mnist5k
  ds = load_mnist5k()
  rng = np.random.default_rng(seed)
  for c in range(10):
    d = os.path.join(root, f"digit{c}")
    os.makedirs(d, exist_ok=True)
    for k, i in enumerate(np.flatnonzero(ds.train_labels == c)[:per_class]):
      h, w = (int(v) for v in rng.integers(48, 113, 2))
      im = Image.fromarray(ds.train_images[i][2:30, 2:30, 0]).resize((w, h), Image.BILINEAR)
      if k % 3 == 0:
        im.save(os.path.join(d, f"d{k:03d}.jpg"), quality=95)
      else:
        im.save(os.path.join(d, f"d{k:03d}.png"))


def thief_npz(export_dir: str, ds, size: int, path: str) -> None:
  """The export's files resized to size x size (RGB), the rows models fit; clean test split."""
  from PIL import Image
  man = json.load(open(os.path.join(export_dir, "export_manifest.json")))
  x = np.zeros((ds.num_train, size, size, 3), np.uint8)
  for rel, rec in man["files"].items():
    if "index" in rec:
      with Image.open(os.path.join(export_dir, rel)) as im:
        x[rec["index"]] = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
  fit = np.asarray(ds.fit_indices)
  np.savez(path, x_train=x[fit], y_train=np.asarray(ds.train_labels)[fit],
           x_test=np.asarray(ds.test_images), y_test=np.asarray(ds.test_labels))


def main(workdir: str, per_class: int = 100, size: int = 32) -> dict:
  from sem_jax.commands.evaluate import evaluate_noise
  from sem_jax.commands.export import export
  from sem_jax.commands.generate import generate_noise
  from sem_jax.run.artifacts import load_run
  from sem_jax.run.configfile import load_config
  from sem_jax.run.eval_defaults import default_eval_config
  os.makedirs(workdir, exist_ok=True)
  photos = os.path.join(workdir, "photos")
  if not os.path.isdir(photos):
    make_digit_photos(photos, per_class)
  quiet = lambda s: None
  cfg = load_config(os.path.join(REPO, "configs/folder/sem.py"),
                    [f"data_dir={photos}", f"image_size={size}", f"augment_pad={max(4, size // 8)}"])
  run_dir = os.path.join(workdir, "noise")
  t0 = time.time()
  generate_noise(cfg, run_dir, log=quiet)
  gen_s = time.time() - t0
  ds = load_run(run_dir).dataset
  exports = {"thumbnails (png, %d px)" % size: ("image", 0), "full size, PNG": ("original", 0),
             "full size, JPEG sources as JPEG q90": ("original", 90)}
  rows = []
  victim, _ = default_eval_config(cfg, ds.image_shape)
  for name, (res, q) in [("clean", (None, 0)), *exports.items()]:
    npz = os.path.join(workdir, f"thief_{len(rows)}.npz")
    vis = None
    if res is None:
      fit = np.asarray(ds.fit_indices)
      np.savez(npz, x_train=np.asarray(ds.train_images)[fit],
               y_train=np.asarray(ds.train_labels)[fit], x_test=np.asarray(ds.test_images),
               y_test=np.asarray(ds.test_labels))
    else:
      out = os.path.join(workdir, f"export_{len(rows)}")
      if not os.path.exists(os.path.join(out, "export_manifest.json")):
        export(run_dir, "png", out, log=quiet, resolution=res, jpeg_quality=q)
      vis = json.load(open(os.path.join(out, "export_manifest.json")))["visibility"]
      thief_npz(out, ds, size, npz)
    ecfg = victim.replace(dataset="npz", data_dir=npz, image_size=0)
    r = evaluate_noise(ecfg, None, os.path.join(workdir, f"victim_{len(rows)}"), log=quiet)
    rows.append({"data": name, "clean_test_acc": r["final"]["test_accuracy"],
                 "psnr_db_mean": vis and vis["psnr_db_mean"], "ssim_mean": vis and vis["ssim_mean"],
                 "jpeg_noise_kept": vis and vis.get("jpeg", {}).get("noise_kept_mean")})
    print(rows[-1], flush=True)
  result = {"photos": ds.num_train, "fit": len(ds.fit_indices), "image_size": size,
            "generate_s": round(gen_s, 1), "rows": rows}
  with open(os.path.join(workdir, "fullsize_protection.json"), "w") as f:
    json.dump(result, f, indent=1)
  print("| victim trained on | clean test acc | PSNR (dB) | SSIM | JPEG noise kept |")
  print("| --- | --- | --- | --- | --- |")
  for r in rows:
    fmt = lambda v, p: "" if v is None else f"{v:.{p}f}"
    print(f"| {r['data']} | {100 * r['clean_test_acc']:.1f} % | {fmt(r['psnr_db_mean'], 2)} | "
          f"{fmt(r['ssim_mean'], 3)} | {fmt(r['jpeg_noise_kept'], 3)} |")
  return result


if __name__ == "__main__":
  main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
