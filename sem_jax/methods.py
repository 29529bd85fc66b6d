"""The noise methods as compositions of parts (SPEC section 4), chosen once at build time.

Every method is the same crafting loop with different parts:

| method | start of δ        | offset a = offset(u)        | labels descended | surrogate loop     |
| ------ | ----------------- | --------------------------- | ---------------- | ------------------ |
| em     | U[-ρu, ρu]        | u (none)                    | y                | standard training  |
| sem    | U[-ρu, ρu]        | one uniform draw in ρa ball | y                | PGD-AT             |
| rem    | U[-ρu, ρu]        | PGD in the ρa ball          | y                | PGD-AT             |
| tap    | U[-ρu, ρu] (or 0) | u (none)                    | (y + 1) mod C    | none (fixed model) |
| random | U[-ρu, ρu], no descent                                                            |

TAP starts where the release's script starts it (``--pgd-random-start``); its config's
``tap_start = "zero"`` gives sem_jax 0.1's zero start. This module is plain data (no jax): the config validates method names against it and
:func:`sem_jax.noise.craft_spec` turns the part names into functions, so no jitted
code branches on a method's name.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Method:
  """The parts of one noise method (names of the functions in ``sem_jax.noise``)."""
  start: str                 # "uniform" | "zero": δ before the first descent step
  offset: str                # "none" | "uniform" | "pgd": the adversarial offset (ρa)
  target: str                # "label" | "next_class": the labels whose CE is descended
  descends: bool = True      # False: the start itself is the noise (random baseline)
  robust_surrogate: bool = False   # the outer loop trains the surrogate with PGD-AT
  outer_loop: bool = True    # False: only the final pass over every image (tap, random)


METHODS: dict[str, Method] = {
    "sem": Method(start="uniform", offset="uniform", target="label", robust_surrogate=True),
    "rem": Method(start="uniform", offset="pgd", target="label", robust_surrogate=True),
    "em": Method(start="uniform", offset="none", target="label"),
    "tap": Method(start="uniform", offset="none", target="next_class", outer_loop=False),
    "random": Method(start="uniform", offset="none", target="label", descends=False,
                     outer_loop=False),
}
