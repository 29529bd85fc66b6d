"""The math: pure JAX functions and static specs, no I/O and no run config.

Compose it in a notebook with your own flax model (any ``model(x) -> logits``; a ``train``
argument and BatchNorm are optional)::

    import jax, optax
    from sem_jax import core
    state = core.init_state(model, optax.sgd(0.1, momentum=0.9), jax.random.key(0), (32, 32, 3))
    crafter = core.sem(radius=8, steps=10, step_size=1.6, samples=5, adv_radius=4)
    keys = core.per_sample(jax.random.key(1), idx)
    noise = crafter.noise(core.logits_fn(model, state), x_uint8, y, keys)   # int8 levels

Units (docs/method.md): images are uint8 levels; the model sees ``x / 255 - 0.5``; the
constructors take radii and steps in pixel levels, the specs hold fractions of [0, 1].

- crafters: :func:`sem`, :func:`rem`, :func:`em`, :func:`tap`, :func:`hypo`, :func:`random` ->
  :class:`CraftSpec` (``spec(logits_fn, x, y, keys)`` -> δ; ``spec.noise(...)`` -> int8);
- the adversary: :func:`pgd_attack` (levels) -> :class:`AttackSpec`; :func:`pgd` (fractions);
- the estimator: :func:`expected_grad`, :func:`expected_loss`, :func:`craft`,
  :func:`quantize`, :func:`apply_noise`;
- training: :class:`TrainState`, :func:`sgd`, :func:`init_state`, :func:`update`,
  :func:`logits_fn`, :func:`predict`, :func:`create_model`;
- data plumbing: :func:`augment`, :func:`normalize`, :func:`protect`, :func:`per_sample`.
"""
from sem_jax.core.attacks import AttackSpec, pgd, pgd_attack
from sem_jax.core.augment import augment
from sem_jax.core.crafting.crafters import em, hypo, random, rem, sem, tap
from sem_jax.core.keys import per_sample
from sem_jax.core.nets.models import create_model
from sem_jax.core.crafting.noise import (CraftSpec, apply_noise, craft, expected_grad, expected_loss,
                                make_noise, quantize)
from sem_jax.core.train import TrainState, init_state, logits_fn, predict, sgd, update
from sem_jax.core.units import fraction, normalize, protect

__all__ = [
    "AttackSpec", "pgd", "pgd_attack", "augment", "em", "hypo", "random", "rem", "sem", "tap",
    "per_sample", "create_model", "CraftSpec", "apply_noise", "craft", "expected_grad",
    "expected_loss", "make_noise", "quantize", "TrainState", "init_state", "logits_fn", "predict",
    "sgd", "update", "fraction", "normalize", "protect",
]
