"""The math: pure JAX functions and static specs, no I/O and no run config (docs/library.md).

Compose it in a notebook with your own flax model::

    import jax, numpy as np
    from sem_jax import core
    state = core.init_state(model, core.paper_sgd(0.1), jax.random.key(0), (32, 32, 3))
    crafter = core.sem(radius=8, steps=10, step_size=1.6, samples=5, adv_radius=4)
    keys = core.per_sample(jax.random.key(1), np.arange(len(x_uint8)))   # dataset indices
    noise = crafter.noise(core.logits_fn(model, state), x_uint8, y, keys)   # int8 levels

Units (docs/method.md, "Units"): radii and step sizes are pixel levels everywhere
(:data:`~sem_jax.core.attacks.Levels`, 8 means 8/255); images are uint8 levels, and the model
sees ``normalize(x) = x / 255 - 0.5``; "noise" is int8 pixel levels, δ the float perturbation
of normalised images.

- crafting: :func:`sem`, :func:`rem`, :func:`em`, :func:`tap`, :func:`hypo`,
  :func:`random_baseline` -> :class:`CraftSpec` (``spec(logits_fn, x, y, keys)`` -> δ;
  ``spec.noise(...)`` -> int8); the estimator :func:`expected_grad`, :func:`expected_loss`,
  :func:`craft`, :func:`make_delta`, :func:`quantize`, :func:`apply_noise`; the surrogate's
  step :func:`surrogate_step`;
- the adversary: :class:`AttackSpec` (levels), :func:`pgd`;
- training: :class:`TrainState`, :func:`paper_sgd`, :func:`init_state`, :func:`update`,
  :func:`logits_fn`, :func:`predict`, :func:`mode_switch`, :func:`create_model`;
- data plumbing: :func:`augment`, :func:`normalize`, :func:`protect`, :func:`per_sample`.

Sub-packages, lowest first: the base modules (units, keys, checks, augment, attacks, train,
quality), :mod:`sem_jax.core.nets`, :mod:`sem_jax.core.crafting`, :mod:`sem_jax.core.poisons`
(the field's other attacks) and :mod:`sem_jax.core.thief` (victims and defenses).
"""
from sem_jax.core.attacks import NO_ATTACK, AttackSpec, Levels, pgd
from sem_jax.core.augment import augment
from sem_jax.core.crafting.crafters import em, hypo, random_baseline, rem, sem, tap
from sem_jax.core.crafting.generation import surrogate_step
from sem_jax.core.crafting.noise import (CraftSpec, apply_noise, craft, expected_grad,
                                         expected_loss, make_delta, quantize)
from sem_jax.core.keys import per_sample
from sem_jax.core.nets.models import create_model
from sem_jax.core.train import (TrainState, init_state, logits_fn, mode_switch, paper_sgd,
                                predict, update)
from sem_jax.core.units import fraction, normalize, protect

__all__ = [
    "AttackSpec", "NO_ATTACK", "Levels", "pgd", "augment", "em", "hypo", "random_baseline",
    "rem", "sem", "tap", "surrogate_step", "per_sample", "create_model", "CraftSpec",
    "apply_noise", "craft", "expected_grad", "expected_loss", "make_delta", "quantize",
    "TrainState", "init_state", "logits_fn", "mode_switch", "paper_sgd", "predict", "update",
    "fraction", "normalize", "protect",
]
