"""Crafting defensive noise: the method table, the specs and their estimator, the constructors
in pixel levels, and the generation steps (the surrogate's outer step and the final pass).

Imports the base modules of [`sem_jax.core`][sem_jax.core] and [`sem_jax.core.nets`][sem_jax.core.nets].
"""
