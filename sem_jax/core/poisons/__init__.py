"""The field's other availability attacks, compared against SEM: class-wise patterns (LSP,
AR), the one-pixel shortcut (OPS), the neural-tangent-kernel attack (NTGA) and DeepConfuse.

Imports the base modules of :mod:`sem_jax.core`, :mod:`sem_jax.core.nets` and
:mod:`sem_jax.core.crafting`.
"""
