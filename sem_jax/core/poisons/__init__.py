"""The field's other availability attacks, compared against SEM: class-wise patterns (LSP,
AR), the one-pixel shortcut (OPS), CUDA's class-wise convolutions, EntF's entangled features,
the neural-tangent-kernel attack (NTGA), DeepConfuse and GUE's game-theoretic generator.

Imports the base modules of [`sem_jax.core`][sem_jax.core], [`sem_jax.core.nets`][sem_jax.core.nets] and
[`sem_jax.core.crafting`][sem_jax.core.crafting].
"""
