"""Crafting defensive noise: the method table, the specs and their estimator, the constructors
in pixel levels, and the generation steps (the surrogate's outer step and the final pass).

Imports the base modules of :mod:`sem_jax.core` and :mod:`sem_jax.core.nets`.
"""
