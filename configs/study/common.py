"""Builders for the protection-study configs (this folder): one place for the CPU settings.

Surrogates: the MNIST-5k demo configs (small CNN width 16, batch 64, J = 3) with crafting
and the surrogate's adversary scaled with ρu: α = ρu / 5, surrogate PGD-AT at ρa = ρu / 2
(10 steps of ρa / 5), as the paper's 8 / 1.6 / 4 / 0.8. Victims: the efficacy benchmark's
(small CNN, 800 steps at batch 128, x0.1 at 320 and 640, PGD-AT of 5 steps of 2ρa / 5).

The study's rows use Flax's initialisation and TAP's zero start (``model_init="flax"``,
``tap_start="zero"``), so its pieces resume and compare with each other.
The efficacy benchmark and the shipped configs use the release's (PyTorch) initialisation.
"""
from sem_jax.suites.study import Experiment

from ..eval.mnist5k import get_config as eval_mnist5k
from ..mnist5k import em, random, rem, sem, tap

VICTIM = dict(train_steps=800, lr_decay_every=320, adv_steps=5, eval_every=200, log_every=100,
              checkpoint_every=400)


def victim(dataset: str = "mnist5k", **changes):
  """The CPU victim on ``dataset`` (eval/mnist5k.py shortened, like the efficacy benchmark)."""
  extra = {"dataset": dataset, "model_init": "flax"}
  if dataset == "skimage_photos":
    extra.update(augment_pad=4)
  return eval_mnist5k().replace(**{**VICTIM, **extra, **changes})


def surrogate(method: str, eps: float, dataset: str = "mnist5k", steps: int = 400, **changes):
  """The generation config of ``method`` at ρu = eps levels (see the module docstring)."""
  base = {"sem": sem, "rem": rem, "em": em, "random": random, "tap": tap}[method].get_config
  fields = dict(dataset=dataset, noise_radius=float(eps), noise_step_size=eps / 5,
                model_init="flax")
  if method in ("sem", "rem", "em"):
    fields.update(train_steps=steps, lr_decay_every=max(1, steps * 2 // 5),
                  adv_radius=eps / 2, adv_step_size=eps / 10)
  if method == "tap":   # 16 levels of travel inside ρu 8 in mnist5k/tap.py: keep travel 2 ρu
    fields.update(noise_step_size=2 * eps / 50, adv_radius=eps / 2, tap_start="zero")
  fields.update(changes)
  return base().replace(**fields)


def radii(eps: float) -> tuple:
  """The thief's PGD-AT radii for noise of radius eps: 0, a quarter and a half of ρu."""
  return (0.0, eps / 4, eps / 2)


def quarter_adversary(eps: float) -> dict:
  """The surrogate settings the study found best against a thief at ρu/4: the surrogate's
  adversary (PGD-AT and SEM's random offset) at ρu/4 in 10 steps of ρu/20, plus the
  feasible-set projection."""
  return dict(adv_radius=eps / 4, adv_step_size=eps / 20, project_to_valid_range=True)


def row(name: str, group: str, method: str, eps: float, dataset: str = "mnist5k",
        label: str = "", adv_radii=None, seed: int = 0, **changes) -> Experiment:
  """One experiment: ``method`` noise at ρu = eps (clean: no noise) and its victims.

  ``seed`` seeds both the generation and the victims (a replicate of a row: another
  surrogate init, data order and noise start, and another victim init and data order)."""
  seeded = {"seed": seed} if seed else {}
  gen = None if method == "clean" else surrogate(method, eps, dataset, **seeded, **changes)
  return Experiment(name=name, group=group, label=label or name,
                    evaluation=victim(dataset, **seeded), adv_radii=adv_radii or radii(eps),
                    generate=gen)
