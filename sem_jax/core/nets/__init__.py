"""The networks: shared layers, the release's models by name ([`sem_jax.core.nets.models.create_model`][sem_jax.core.nets.models.create_model]) and APBench's victims.

Imports only the base modules of [`sem_jax.core`][sem_jax.core].
"""
