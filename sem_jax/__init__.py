"""sem_jax: Stable Error-Minimizing (SEM) unlearnable-example noise, and EM / REM, in JAX.

Units: images are uint8 pixel levels; the model sees ``x / 255 - 0.5``; noise
radii and steps are pixel levels in configs and fractions of [0, 1] inside the
math; stored noise is int8 pixel levels.

Public API (all pure; the array functions are jittable):

- :func:`augment` — per-sample random flip + pad-and-crop, keyed per sample.
- :func:`pgd` — L∞ / L2 projected gradient ascent on the cross-entropy.
- :class:`CraftSpec`, :func:`craft_spec`, :func:`craft`, :func:`expected_grad`,
  :func:`expected_loss`, :func:`quantize`, :func:`apply_noise` — the defensive
  noise estimators (EM, REM, SEM) and the crafting step.
- :func:`create_model`, :class:`TrainState`, :func:`make_optimizer`,
  :func:`init_state`, :func:`update`, :func:`eval_logits_fn` — surrogate training.
- :class:`GenerateConfig`, :func:`load_config`, :func:`generate_noise` — the full run (module
  ``sem_jax.generate``; its jitted steps in ``sem_jax.steps``, the shared run scaffold in
  ``sem_jax.loop``, the artifacts it writes in ``sem_jax.manifest``).
- :class:`EvalConfig`, :func:`evaluate_noise` — train a victim on protected data, test it on
  clean data (module ``sem_jax.evaluate``; defenses in ``sem_jax.defenses``).
- :class:`Dataset`, :func:`load_dataset`, :func:`make_dataset`,
  :func:`normalize`, :func:`protect` — data in (sources in ``sem_jax.datasets``), protected
  images out.
- :class:`SemJaxError` — raised for bad input, with a one-line message.
"""

__version__ = "0.2.0"

from sem_jax.errors import SemJaxError
from sem_jax.augment import augment
from sem_jax.attacks import pgd
from sem_jax.noise import (CraftSpec, apply_noise, craft, craft_spec, expected_grad,
                           expected_loss, quantize)
from sem_jax.models import create_model
from sem_jax.train import TrainState, eval_logits_fn, init_state, make_optimizer, update
from sem_jax.config import EvalConfig, GenerateConfig
from sem_jax.configfile import load_config
from sem_jax.data import Dataset, make_dataset, normalize, protect
from sem_jax.datasets import load_dataset
from sem_jax.generate import generate_noise
from sem_jax.evaluate import evaluate_noise

__all__ = [
    "SemJaxError", "augment", "pgd", "CraftSpec", "apply_noise", "craft", "craft_spec",
    "expected_grad", "expected_loss", "quantize", "create_model", "TrainState", "eval_logits_fn",
    "init_state", "make_optimizer", "update", "GenerateConfig", "load_config", "generate_noise",
    "Dataset", "load_dataset", "make_dataset", "normalize", "protect", "EvalConfig", "evaluate_noise",
]
