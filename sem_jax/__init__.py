"""sem_jax: Stable Error-Minimizing (SEM) unlearnable-example noise and its baselines (EM, REM,
TAP, random) in JAX, with the evaluation that tells whether the noise protects.

The package is layered, each layer importing only those below it:

- [`sem_jax.core`][sem_jax.core]: the math (pure JAX; crafters ``sem``/``rem``/``em``/``tap``/``random_baseline``,
  PGD, training steps, models, defenses);
- `sem_jax.files`, `sem_jax.data`: files and datasets;
- `sem_jax.run`: configs, resumable runs, checkpoints, sharding;
- `sem_jax.commands`: generate, evaluate, export, verify, import-noise, bench;
- `sem_jax.suites`: the protection study (and the efficacy benchmark as one);
- `sem_jax.cli`: the command line (``run.py``, ``sem-jax``, ``python -m sem_jax``).

The names below are loaded on first use, so ``import sem_jax`` is instant:

- [`SemJaxError`][sem_jax.errors.SemJaxError]: raised for bad input, with a one-line message;
- [`GenerateConfig`][sem_jax.run.config.GenerateConfig], [`EvalConfig`][sem_jax.run.config.EvalConfig], [`load_config`][sem_jax.run.configfile.load_config]: the run configs;
- [`generate_noise`][sem_jax.commands.generate.generate_noise], [`evaluate_noise`][sem_jax.commands.evaluate.evaluate_noise]: the two runs;
- `Dataset`, `make_dataset`, `load_dataset`: data in;
- [`protect`][sem_jax.core.units.protect]: the published image ``clip(x + noise, 0, 255)``.
"""
from __future__ import annotations

import importlib

__version__ = "0.3.0"

_LAZY = {
    "SemJaxError": "sem_jax.errors",
    "GenerateConfig": "sem_jax.run.config",
    "EvalConfig": "sem_jax.run.config",
    "load_config": "sem_jax.run.configfile",
    "generate_noise": "sem_jax.commands.generate",
    "evaluate_noise": "sem_jax.commands.evaluate",
    "Dataset": "sem_jax.data.dataset",
    "make_dataset": "sem_jax.data.dataset",
    "load_dataset": "sem_jax.data.sources",
    "protect": "sem_jax.core.units",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'sem_jax' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_LAZY))
