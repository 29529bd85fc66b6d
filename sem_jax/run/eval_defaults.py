"""The victim ``evaluate --noise RUN`` trains when no ``--config`` is given: the noise run's own
dataset fields (from its manifest) and a victim chosen by the dataset, else by image size.

- CIFAR-10/100 and SVHN: the paper's protocol (``EvalConfig``'s defaults: ResNet-18, 40000
  steps of 128; docs/method.md, "Evaluation protocol").
- ``imagenet_subset``: ``configs/eval/imagenet_subset.py``'s ResNet-18 on 224 crops.
- any other data (MNIST-5k, a folder of photos, an npz) of side ≤ 64 px: the CPU victim of
  ``configs/eval/mnist5k.py`` (small CNN of width 16, 1000 steps of 128, x0.1 at 400 and 800),
  with the crop padding scaled to the image (side / 8, at least 4 px);
- larger images: ResNet-18, 5000 steps of 128, x0.1 at 2000 and 4000 (an assumption, scaled from
  the CIFAR schedule; pass ``--config`` for a studied victim).
"""
from __future__ import annotations

from sem_jax.run.config import EvalConfig, GenerateConfig

DATA_FIELDS = ("dataset", "data_dir", "num_classes", "image_size", "test_fraction", "data_cache")
PAPER_SETS = ("cifar10", "cifar100", "svhn")

SMALL_VICTIM = dict(model="small_cnn", model_width=16, batch_size=128, train_steps=1000,
                    lr_decay_every=400, cutout_size=8, eval_every=100, log_every=50,
                    checkpoint_every=250)
LARGE_VICTIM = dict(model="resnet18", batch_size=128, train_steps=5000, lr_decay_every=2000,
                    eval_every=500, checkpoint_every=1000)
IMAGENET_VICTIM = dict(model="resnet18", crop_size=224, adv_radius=4.0, adv_steps=8,
                       adv_step_size=1.0, eval_every=2000, checkpoint_every=2000)


def default_eval_config(gen: GenerateConfig, image_shape) -> tuple[EvalConfig, str]:
  """(the victim's config for noise made by ``gen`` on images of ``image_shape`` (H, W, C),
  a few words naming the choice for the log)."""
  data = {k: getattr(gen, k) for k in DATA_FIELDS}
  side = int(max(image_shape[:2]))
  if gen.dataset in PAPER_SETS:
    return EvalConfig(**data, eval_every=2000, checkpoint_every=2000), "the paper's ResNet-18"
  if gen.dataset == "imagenet_subset":
    return EvalConfig(**data, **IMAGENET_VICTIM), "ResNet-18 on 224 px crops"
  if side <= 64:
    return (EvalConfig(**data, **SMALL_VICTIM, augment_pad=max(4, side // 8)),
            f"the small CNN for {side} px images")
  return (EvalConfig(**data, **LARGE_VICTIM, augment_pad=side // 8),
          f"ResNet-18 for {side} px images")
