"""The study at the paper's strength (docs/study.md, "At the paper's strength"): ResNet-18
surrogates and victims on the real offline sets, for a GPU (`bash tools/gpu_paper_strength.sh`).

Generation: the paper's settings (`configs/cifar10/sem.py`: ResNet-18, batch 128, K 10, J 5,
α 1.6, surrogate PGD-AT at ρa 4 in 10 steps of 0.8, ρu 8) for SEM, REM and EM, STEPS outer
steps (default 2000; lr x0.1 every 2/5 of them, as the paper's 5000 / 2000), with and without the
feasible-set projection, on MNIST-5k and on the digits upsampled to 32 px (`digits32.npz` from
`tools/variant_data.py`, in $SEM_JAX_VARIANT_DATA). Victims: ResNet-18 under the paper's protocol
shortened to VICTIM_STEPS steps at batch 128 (default 2000; x0.1 at 2/5 and 4/5), standard
training and PGD-AT at ρa 2 and 4 (10 steps of ρa/5), and clean victims. The paper's
initialisation (``model_init="pytorch"``) throughout.

Rows run in the order listed: SEM first, then EM, then REM (the costliest: K·J·11 passes per
image per step), so a session that stops early has the rows the question needs most.
$SEM_JAX_PAPER_STEPS / $SEM_JAX_PAPER_VICTIM_STEPS / $SEM_JAX_PAPER_ROWS (name prefixes)
shrink it; $SEM_JAX_PAPER_DATA (an .npz) stands in for both sets, for the CPU check:

  SEM_JAX_PAPER_DATA=tiny.npz SEM_JAX_PAPER_STEPS=1 SEM_JAX_PAPER_VICTIM_STEPS=1 \
  SEM_JAX_PAPER_ROWS="paper-mnist5k-clean paper-mnist5k-sem-proj" \
      python run.py study --config configs/study/paper_strength.py --workdir runs/paper-check
"""
import os

from sem_jax.run.config import EvalConfig
from sem_jax.suites.study import Experiment, StudyConfig

from ..cifar10 import em, rem, sem
from .variants import data_dir

STEPS = int(os.environ.get("SEM_JAX_PAPER_STEPS", "2000"))
VICTIM_STEPS = int(os.environ.get("SEM_JAX_PAPER_VICTIM_STEPS", "2000"))
ROWS = tuple(os.environ.get("SEM_JAX_PAPER_ROWS", "").split())
RADII = (0.0, 2.0, 4.0)


def datasets() -> dict:
  """name -> (dataset, data_dir, classes) of the two real sets."""
  stand_in = os.environ.get("SEM_JAX_PAPER_DATA")
  if stand_in:
    return {k: ("npz", os.path.abspath(stand_in), 10) for k in ("mnist5k", "digits32")}
  return {"mnist5k": ("mnist5k", "", 10),
          "digits32": ("npz", os.path.join(data_dir(), "digits32.npz"), 10)}


def victim(dataset: str, path: str) -> EvalConfig:
  """The paper's ResNet-18 victim (configs/eval/cifar10.py) shortened to VICTIM_STEPS."""
  return EvalConfig(dataset=dataset, data_dir=path, model="resnet18", seed=0, batch_size=128,
                    train_steps=VICTIM_STEPS, learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
                    lr_decay_every=max(1, VICTIM_STEPS * 2 // 5), augment=True, augment_pad=4,
                    adv_steps=10, eval_every=max(1, VICTIM_STEPS // 4),
                    log_every=max(1, VICTIM_STEPS // 10), checkpoint_every=max(1, VICTIM_STEPS // 2))


def surrogate(method: str, dataset: str, path: str, project: bool):
  base = {"sem": sem, "em": em, "rem": rem}[method].get_config()
  return base.replace(dataset=dataset, data_dir=path, train_steps=STEPS,
                      lr_decay_every=max(1, STEPS * 2 // 5), project_to_valid_range=project,
                      checkpoint_every=max(1, STEPS // 4), log_every=max(1, STEPS // 20))


def rows() -> list:
  out = []
  for key, (dataset, path, _) in datasets().items():
    g = f"{key}, ResNet-18, ρu 8"
    out.append(Experiment(name=f"paper-{key}-clean", group=g, label="clean",
                          evaluation=victim(dataset, path), adv_radii=RADII))
  for method in ("sem", "em", "rem"):
    for key, (dataset, path, _) in datasets().items():
      for project in (False, True):
        name = f"paper-{key}-{method}" + ("-proj" if project else "")
        out.append(Experiment(name=name, group=f"{key}, ResNet-18, ρu 8",
                              label=method + (" + projection" if project else ""),
                              evaluation=victim(dataset, path), adv_radii=RADII,
                              generate=surrogate(method, dataset, path, project)))
  return [r for r in out if not ROWS or r.name.startswith(ROWS)]


def get_config() -> StudyConfig:
  return StudyConfig(name="paper_strength",
                     title=f"at the paper's strength: ResNet-18, {STEPS} surrogate steps, "
                           f"{VICTIM_STEPS} victim steps",
                     experiments=tuple(rows()))
