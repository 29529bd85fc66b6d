"""Constructors of the noise methods, in pixel levels (docs/method.md, "Default hyperparameters").

Each returns a [`sem_jax.core.crafting.noise.CraftSpec`][sem_jax.core.crafting.noise.CraftSpec], the method's defensive-noise
step; radii and steps are pixel levels, as everywhere in the public API. The defaults are the
paper's CIFAR settings. Call the result on a batch::

    crafter = sem(radius=8, steps=10, step_size=1.6, samples=5, adv_radius=4)
    delta = crafter(logits_fn, normalize(x_uint8), y, keys)   # δ, fractions: |δ| <= 8/255
    noise = crafter.noise(logits_fn, x_uint8, y, keys)       # int8 pixel levels, |noise| <= 8

``logits_fn`` is any frozen model ``x -> logits`` (BatchNorm in eval mode); ``keys`` are
per-sample PRNG keys ([`sem_jax.core.keys.per_sample`][sem_jax.core.keys.per_sample]).
"""
from __future__ import annotations

from sem_jax.core import checks
from sem_jax.core.attacks import NO_ATTACK, AttackSpec
from sem_jax.core.crafting.noise import CraftSpec


def _adversary(fn, adv_radius, adv_steps, adv_step_size, adv_norm, unroll) -> AttackSpec:
  """The constructors' ρa ball, refused under its own argument names."""
  checks.levels("adv_radius", adv_radius, allow_zero=True, fn=fn)
  if adv_radius > 0:
    checks.travel(fn, adv_steps, adv_step_size, adv_radius, step_name="adv_step_size",
                  radius_name="adv_radius", max_ratio=2.0)
  return AttackSpec(adv_radius, adv_steps, adv_step_size, adv_norm, unroll)


def _spec(method, radius, steps, step_size, samples, adversary=NO_ATTACK, *, augment_pad=4,
          crop_size=0, project=False, start="uniform", unroll=False, **parts) -> CraftSpec:
  return CraftSpec(method=method, radius=radius, steps=steps, step_size=step_size,
                   num_samples=samples, adversary=adversary, augment_pad=augment_pad,
                   crop_size=crop_size, project=project, start=start, unroll=unroll, **parts)


def sem(radius: float = 8, steps: int = 10, step_size: float = 1.6, samples: int = 5,
        adv_radius: float = 4, *, adv_steps: int = 10, adv_step_size: float = 0.8,
        adv_norm: str = "linf", **options) -> CraftSpec:
  """Stable error-minimizing noise (Liu et al., AAAI 2024): K = ``steps`` sign-descent steps of
  ``step_size`` levels inside ρu = ``radius`` levels, on the mean over J = ``samples`` draws of
  (augmentation, one uniform offset in the ρa = ``adv_radius`` ball). ``adv_steps`` and
  ``adv_step_size`` are the surrogate's PGD-AT (the offset itself uses only the ball).

  ``options``: ``augment_pad`` (pixels; < 0: no augmentation), ``crop_size``, ``project``
  (keep x + δ in the valid range), ``unroll``, and the parts of [`CraftSpec`][CraftSpec] (``loss``,
  ``offset_fn``, ``init``, ``step``, ``projection``).

  Example:
    >>> from sem_jax import core
    >>> spec = core.sem(radius=8, steps=10, step_size=1.6, samples=5, adv_radius=4)
    >>> spec.method, spec.radius, spec.adversary.radius
    ('sem', 8, 4)
  """
  return _spec("sem", radius, steps, step_size, samples,
               _adversary("sem", adv_radius, adv_steps, adv_step_size, adv_norm,
                          options.get("unroll", False)), **options)


def rem(radius: float = 8, steps: int = 10, step_size: float = 1.6, samples: int = 5,
        adv_radius: float = 4, adv_steps: int = 10, adv_step_size: float = 0.8, *,
        adv_norm: str = "linf", **options) -> CraftSpec:
  """Robust error-minimizing noise (Fu et al., ICLR 2022): as [`sem`][sem], with PGD of
  ``adv_steps`` steps of ``adv_step_size`` levels inside the ρa ball instead of the uniform
  offset (about 9x SEM's cost per step at the defaults).

  Example:
    >>> from sem_jax import core
    >>> core.rem(radius=8, adv_radius=4).adversary.steps
    10
  """
  return _spec("rem", radius, steps, step_size, samples,
               _adversary("rem", adv_radius, adv_steps, adv_step_size, adv_norm,
                          options.get("unroll", False)), **options)


def em(radius: float = 8, steps: int = 10, step_size: float = 1.6, samples: int = 5,
       **options) -> CraftSpec:
  """Error-minimizing noise (Huang et al., ICLR 2021): sign descent of the expected
  cross-entropy over augmentations, no adversarial offset.

  Example:
    >>> from sem_jax import core
    >>> core.em(radius=8).adversary == core.NO_ATTACK
    True
  """
  return _spec("em", radius, steps, step_size, samples, **options)


def tap(radius: float = 8, steps: int = 250, step_size: float = 0.064, samples: int = 1, *,
        start: str = "uniform", **options) -> CraftSpec:
  """Targeted adversarial poisoning (Fowl et al., NeurIPS 2021): descend the cross-entropy of
  the target class (y + 1) mod C against a fixed, normally trained model (CIFAR: 250 steps of
  0.064 levels inside 8). ``start``: ``uniform`` (δ ~ U[-ρu, ρu]) or ``zero``.

  Example:
    >>> from sem_jax import core
    >>> core.tap(radius=8, steps=50, step_size=0.32).next_class_target
    True
  """
  return _spec("tap", radius, steps, step_size, samples, start=start, **options)


def hypo(radius: float = 8, steps: int = 100, step_size: float = 0.8, samples: int = 1,
         **options) -> CraftSpec:
  """Hypocritical perturbations (Tao et al., NeurIPS 2021): from δ = 0, descend the
  cross-entropy of the true label against a fixed, normally trained model (APBench: 100 steps
  of 0.8 levels inside 8, x + δ kept in the valid range: ``project=True``).

  Example:
    >>> from sem_jax import core
    >>> core.hypo(radius=8).start
    'zero'
  """
  return _spec("hypo", radius, steps, step_size, samples, start="zero", **options)


def random_baseline(radius: float = 8) -> CraftSpec:
  """The random baseline: δ ~ U[-ρu, ρu] per pixel, quantised like the others.

  Example:
    >>> import jax, numpy as np
    >>> from sem_jax import core
    >>> x = np.zeros((2, 4, 4, 1), np.uint8); keys = core.per_sample(jax.random.key(0), np.arange(2))
    >>> noise = core.random_baseline(8).noise(lambda v: v.reshape(2, -1)[:, :3], x, np.array([0, 1]), keys)
    >>> str(noise.dtype), int(abs(noise).max()) <= 8
    ('int8', True)
  """
  return _spec("random", radius, 0, 0.0, 0)
