"""The protection-efficacy benchmark on the offline MNIST-5k digits (2 CPU cores), as a study.

Noise: clean (none), random, EM, TAP, REM and SEM, then the field's other attacks (LSP, OPS,
AR, NTGA, DeepConfuse, hypocritical: :data:`ATTACKS`, configs/apbench.py), each from its
mnist5k/ config with the
surrogate shortened to 200 steps (x0.1 at 80 and 160) so that REM's generation (~10x SEM's
cost per step) fits. Victims: eval/mnist5k.py shortened to 800 steps (x0.1 at 320, 640),
PGD-AT with 5 steps of 2ρa/5 (the paper: 10 of ρa/5, the same total travel 2ρa), at ρa in
{0, 2, 4, 8}. TAP and hypo attack the clean ρa = 0 victim; DeepConfuse's loop is shortened
like the surrogates'. Noise made elsewhere joins as a row with
``Experiment(name, GROUP, victim(), RADII, noise_dir="runs/theirs")``.

  python run.py study --config configs/study/efficacy_mnist5k.py --workdir runs/eff
"""
from sem_jax.suites.study import Experiment, StudyConfig

from ..eval.mnist5k import get_config as eval_mnist5k
from ..mnist5k import ar, dc, em, hypo, lsp, ntga, ops, random, rem, sem, tap

SHORT = dict(train_steps=200, lr_decay_every=80)
GROUP = "MNIST-5k, ρu 8"
RADII = (0.0, 2.0, 4.0, 8.0)


def victim():
  return eval_mnist5k().replace(train_steps=800, lr_decay_every=320, adv_steps=5,
                                eval_every=100, log_every=100, checkpoint_every=400)


def attacks() -> dict:
  """The field's other attacks as this benchmark generates them (name -> config)."""
  return {"lsp": lsp.get_config(), "ops": ops.get_config(), "ar": ar.get_config(),
          "ntga": ntga.get_config(), "dc": dc.get_config().replace(**SHORT),
          "hypo": hypo.get_config()}   # tap_model: the study's eval/clean-ra0


def get_config() -> StudyConfig:
  generators = {
      "random": random.get_config(),
      "em": em.get_config().replace(**SHORT),
      "tap": tap.get_config(),          # tap_model: the study's eval/clean-ra0
      "rem": rem.get_config().replace(**SHORT),
      "sem": sem.get_config().replace(**SHORT),
  }
  rows = [Experiment("clean", GROUP, victim(), RADII)]
  rows += [Experiment(m, GROUP, victim(), RADII, generate=g)
           for m, g in {**generators, **attacks()}.items()]
  return StudyConfig(experiments=tuple(rows), name="efficacy",
                     title="protection efficacy on MNIST-5k (ρu 8)")
