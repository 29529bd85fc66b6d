"""TAP on MNIST-5k: targeted adversarial poisons against a fixed, normally trained victim.

Make the victim first (it is also the clean reference point):
  python run.py evaluate --config configs/eval/mnist5k.py --noise none --workdir runs/clean
then: python run.py generate --config configs/mnist5k/tap.py --workdir runs/tap
      (--config.tap_model=DIR to use another victim).
The paper's 250 steps of 0.064 levels become 50 steps of 0.32 here (the same 16 levels of
travel inside ρu 8) to fit 2 CPU cores; one augmentation sample per step.
"""
from .sem import get_config as sem


def get_config():
  return sem().replace(method="tap", tap_model="runs/clean", noise_steps=50,
                noise_step_size=0.32, num_samples=1, batch_size=200)
