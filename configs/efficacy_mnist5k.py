"""The protection-efficacy benchmark on the offline MNIST-5k digits (2 CPU cores).

Noise: clean (none), random, EM, TAP, REM and SEM, each from its mnist5k_* config
with the surrogate shortened to 200 steps (x0.1 at 80 and 160) so that REM's
generation (~10x SEM's cost per step) fits. Victims: eval_mnist5k.py shortened to
800 steps (x0.1 at 320, 640), PGD-AT with 5 steps of 2ρa/5 (the paper: 10 of ρa/5,
the same total travel 2ρa), at ρa in {0, 2, 4, 8}. TAP attacks the clean ρa = 0 victim.

  python run.py benchmark-efficacy --config configs/efficacy_mnist5k.py --workdir runs/eff
"""
from configs_common import derive
from sem_jax.config import EfficacyConfig

SHORT = dict(train_steps=200, lr_decay_every=80)


def get_config() -> EfficacyConfig:
  evaluation = derive("eval_mnist5k.py", train_steps=800, lr_decay_every=320, adv_steps=5,
                      eval_every=100, log_every=100, checkpoint_every=400)
  generators = {
      "random": derive("mnist5k_random.py"),
      "em": derive("mnist5k_em.py", **SHORT),
      "tap": derive("mnist5k_tap.py"),          # tap_model: filled in with eval/clean-ra0
      "rem": derive("mnist5k_rem.py", **SHORT),
      "sem": derive("mnist5k_sem.py", **SHORT),
  }
  return EfficacyConfig(evaluation=evaluation, generators=generators,
                        methods=("clean", "random", "em", "tap", "rem", "sem"),
                        adv_radii=(0.0, 2.0, 4.0, 8.0))
