"""The networks: shared layers, the release's models by name (:func:`sem_jax.core.nets.models.create_model`) and APBench's victims.

Imports only the base modules of :mod:`sem_jax.core`.
"""
