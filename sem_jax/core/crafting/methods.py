"""The noise methods as compositions of parts (docs/method.md, "The noise generators").

Every method is the same crafting loop with different parts:

| method | start of δ        | offset a = offset(u)        | labels descended | surrogate loop     |
| ------ | ----------------- | --------------------------- | ---------------- | ------------------ |
| em     | U[-ρu, ρu]        | u (none)                    | y                | standard training  |
| sem    | U[-ρu, ρu]        | one uniform draw in ρa ball | y                | PGD-AT             |
| rem    | U[-ρu, ρu]        | PGD in the ρa ball          | y                | PGD-AT             |
| tap    | U[-ρu, ρu] (or 0) | u (none)                    | (y + 1) mod C    | none (fixed model) |
| hypo   | 0                 | u (none)                    | y                | none (fixed model) |
| random | U[-ρu, ρu], no descent                                                            |

The field's other attacks are not crafting loops (``kind``): ``lsp``, ``ar`` and ``ops`` are
model-free class-wise patterns ([`sem_jax.core.poisons.patterns`][sem_jax.core.poisons.patterns], [`sem_jax.core.poisons.one_pixel`][sem_jax.core.poisons.one_pixel]),
``cuda`` convolves each class with its own private filter ([`sem_jax.core.poisons.cuda`][sem_jax.core.poisons.cuda]),
``entf`` entangles features against an adversarially trained reference model ([`sem_jax.core.poisons.entf`][sem_jax.core.poisons.entf]),
``ntga`` attacks a neural tangent kernel ([`sem_jax.core.poisons.ntga`][sem_jax.core.poisons.ntga]) and ``dc`` trains a noise
generator against a classifier ([`sem_jax.core.poisons.deepconfuse`][sem_jax.core.poisons.deepconfuse]), as ``gue`` does in a
Stackelberg game ([`sem_jax.core.poisons.gue`][sem_jax.core.poisons.gue]). Each declares the norm of
its budget ([`sem_jax.core.crafting.budgets`][sem_jax.core.crafting.budgets]).

This module is plain data (no jax): the run configs validate method names against it and
[`sem_jax.core.crafting.noise.CraftSpec`][sem_jax.core.crafting.noise.CraftSpec] derives its parts from it, so no jitted code branches on
a method's name and no spec can pair a method with another method's parts.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Method:
  """The parts of one noise method (names of the functions in ``sem_jax.core.crafting.noise``)."""
  offset: str                # "none" | "uniform" | "pgd": the adversarial offset (ρa)
  target: str                # "label" | "next_class": the labels whose CE is descended
  descends: bool = True      # False: the U[-ρu, ρu] start itself is the noise (random baseline)
  robust_surrogate: bool = False   # the outer loop trains the surrogate with PGD-AT
  outer_loop: bool = True    # False: only the final pass over every image (tap, random)
  zero_start: bool = False   # δ may start at 0 instead of U[-ρu, ρu] (TAP's ``start="zero"``)
  kind: str = "craft"        # craft (the loop above) | pattern | kernel | generator | reference
  norm: str = "linf"         # the budget's norm: linf | l2 | lsp (l2, patch-constant) | l0 |
                             # conv (class filters)
  fixed_model: bool = False  # crafts against the fixed model of ``tap_model`` (tap, hypo)


METHODS: dict[str, Method] = {
    "sem": Method(offset="uniform", target="label", robust_surrogate=True),
    "rem": Method(offset="pgd", target="label", robust_surrogate=True),
    "em": Method(offset="none", target="label"),
    "tap": Method(offset="none", target="next_class", outer_loop=False, zero_start=True,
                  fixed_model=True),
    "hypo": Method(offset="none", target="label", outer_loop=False, zero_start=True,
                   fixed_model=True),
    "random": Method(offset="none", target="label", descends=False, outer_loop=False),
    "lsp": Method(offset="none", target="label", descends=False, outer_loop=False,
                  kind="pattern", norm="lsp"),
    "ar": Method(offset="none", target="label", descends=False, outer_loop=False,
                 kind="pattern", norm="l2"),
    "ops": Method(offset="none", target="label", descends=False, outer_loop=False,
                  kind="pattern", norm="l0"),
    "cuda": Method(offset="none", target="label", descends=False, outer_loop=False,
                   kind="pattern", norm="conv"),
    "entf": Method(offset="none", target="label", outer_loop=False, kind="reference"),
    "ntga": Method(offset="none", target="label", outer_loop=False, kind="kernel"),
    "dc": Method(offset="none", target="label", kind="generator"),
    "gue": Method(offset="none", target="label", kind="generator"),
}
