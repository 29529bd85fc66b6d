"""The attacks made to survive adversarial training, which APBench does not have, with each
release's hyperparameters (docs/method.md, "The field's other attacks"), built on one
dataset's SEM config: ``robust("cuda", base)``.
"""
from sem_jax.run.config import GenerateConfig


def robust(method: str, base: GenerateConfig, *, reference: str = "",
           **changes) -> GenerateConfig:
  """``method`` on ``base``'s dataset and model. ``reference``: entf's adversarially trained
  reference model, the workdir of a finished ``evaluate`` on clean data with PGD-AT."""
  fields = {
      # vinusankars/Convolution-based-Unlearnability, final_filter_unlearnable.py: 3x3
      # filters (kernel_size), one entry 1 (center_parameter), the others U[0, 0.3]
      # (--blur-parameter's default and the README's CIFAR-10 command; the script gives
      # CIFAR-100 the same default, and we keep it for MNIST-5k and SVHN, where the paper
      # states no value)
      "cuda": dict(cuda_blur=0.3, cuda_kernel=3),
      # WenRuiUSTC/EntF, utils/options.py: --eps 8, --attackiter 300, --tau 0.05 (a signed
      # step of 0.05 eps = 0.4 levels), --init randn, --paugment (each step on a flip +
      # pad-and-crop view), --recipe push; the reference trained at --robust_eps 4
      "entf": dict(noise_radius=8.0, noise_steps=300, noise_step_size=0.4, entf_recipe="push",
                   augment=True, tap_model=reference),
      # hong-xian/gue, gue.py: eps 8, generator SGD lr 0.1 (--lr_atk), classifier SGD lr 0.01
      # without momentum or weight decay (--lr_cls), 10 Adam steps of 1e-4 for the follower's
      # best response (--iterations, --lr_tmp), η 1.5, batch 256, 50 epochs; the generator is
      # DeepConfuse's auto-encoder, not the release's UNet (docs/method.md)
      "gue": dict(noise_radius=8.0, dc_generator_lr=0.1, learning_rate=0.01, momentum=0.0,
                  weight_decay=0.0, gue_eta=1.5, gue_inner_steps=10, gue_inner_lr=1e-4,
                  batch_size=256, augment=False),
  }[method]
  return base.replace(method=method, **{**fields, **changes})
