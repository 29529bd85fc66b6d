"""The math: pure JAX functions and static specs, no I/O and no run config (docs/library.md).

Compose it in a notebook with your own flax model::

    import jax, numpy as np
    from sem_jax import core
    state = core.init_state(model, core.paper_sgd(0.1), jax.random.key(0), (32, 32, 3))
    crafter = core.sem(radius=8, steps=10, step_size=1.6, samples=5, adv_radius=4)
    keys = core.per_sample(jax.random.key(1), np.arange(len(x_uint8)))   # dataset indices
    noise = crafter.noise(core.logits_fn(model, state), x_uint8, y, keys)   # int8 levels

Units (docs/method.md, "Units"): radii and step sizes are pixel levels everywhere
([`Levels`][sem_jax.core.attacks.Levels], 8 means 8/255); images are uint8 levels, and the model
sees ``normalize(x) = x / 255 - 0.5``; "noise" is int8 pixel levels, δ the float perturbation
of normalised images.

- crafting: [`sem`][sem], [`rem`][rem], [`em`][em], [`tap`][tap], [`hypo`][hypo],
  [`random_baseline`][random_baseline] -> [`CraftSpec`][CraftSpec] (``spec(logits_fn, x, y, keys)`` -> δ;
  ``spec.noise(...)`` -> int8); the estimator [`expected_grad`][expected_grad], [`expected_loss`][expected_loss],
  [`craft`][craft], [`make_delta`][make_delta], [`quantize`][quantize], [`apply_noise`][apply_noise]; the surrogate's
  step [`surrogate_step`][surrogate_step];
- the adversary: [`AttackSpec`][AttackSpec] (levels), [`pgd`][pgd];
- training: [`TrainState`][TrainState], [`paper_sgd`][paper_sgd], [`init_state`][init_state], [`update`][update],
  [`logits_fn`][logits_fn], [`predict`][predict], [`mode_switch`][mode_switch], [`create_model`][create_model];
- data plumbing: [`augment`][augment], [`normalize`][normalize], [`protect`][protect], [`per_sample`][per_sample].

Sub-packages, lowest first: the base modules (units, keys, checks, augment, attacks, train,
quality), [`sem_jax.core.nets`][sem_jax.core.nets], [`sem_jax.core.crafting`][sem_jax.core.crafting], [`sem_jax.core.poisons`][sem_jax.core.poisons]
(the field's other attacks) and [`sem_jax.core.thief`][sem_jax.core.thief] (victims and defenses).
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
