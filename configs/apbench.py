"""The field's other attacks with APBench's hyperparameters (lafeat/apbench,
``poisons_generate.py`` and ``attack/*_poisons.py``; each paper where APBench leaves a value
open), built on one dataset's SEM config: ``attack("lsp", base)``.

Budgets (docs/method.md, "Budgets"): lsp L2 6 sqrt(H W C) levels on 8x8 patches, ar L2 255
levels (APBench's 1.0), ops one pixel, the others L∞ 8 levels.
"""
from sem_jax.run.config import GenerateConfig


def attack(method: str, base: GenerateConfig, *, clean: str = "", big: bool = False,
           **changes) -> GenerateConfig:
  """``method`` on ``base``'s dataset and model. ``clean``: the workdir of the normally
  trained victim hypo attacks; ``big``: 224 px images (LSP's 32 px patches)."""
  fields = {
      # lsp_poisons.py: L∞-equivalent 6/255 -> L2 6 sqrt(d); 8 px patches (32 at 224 px);
      # make_classification(class_sep=10)
      "lsp": dict(noise_radius=6.0, lsp_patch=32 if big else 8, lsp_class_sep=10.0),
      # ar_poisons.py: L2 eps 1.0 (255 levels), canvas (36, 36) cropped by 4
      "ar": dict(noise_radius=255.0, ar_norm="l2", ar_crop=4),
      # ops_poisons.py: one pixel per class (sparsity 1); no radius
      "ops": dict(),
      # hypo_poisons.py: 100 steps of 0.8/255 in 8/255 from x, clipped to [0, 1] each step,
      # against a normally trained model, no augmentation
      "hypo": dict(noise_radius=8.0, noise_steps=100, noise_step_size=0.8, num_samples=1,
                   augment=False, project_to_valid_range=True, tap_model=clean),
      # ntga_poisons.py: 8/255, 10 steps of 1.1 x 8/255 / 10, blocks of 512, t = 64,
      # W_std² 1.76, b_std² 0.18
      "ntga": dict(noise_radius=8.0, noise_steps=10, noise_step_size=0.88, ntga_block=512,
                   ntga_time=64.0),
      # dc_poisons.py: the generator's noise scaled by 8/255 (atk.0.032); its classifier
      # trained as the surrogates are
      "dc": dict(noise_radius=8.0),
  }[method]
  return base.replace(method=method, **{**fields, **changes})
