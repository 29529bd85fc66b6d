"""The data layer: datasets as validated uint8 arrays and where they come from.

- :mod:`~sem_jax.data.dataset`: the :class:`Dataset` type, its validation and fingerprint;
- :mod:`~sem_jax.data.sources`: the offline sets, a user's npz, :func:`load_dataset`;
- :mod:`~sem_jax.data.folder`: a user's image folder; :mod:`~sem_jax.data.tfds`: CIFAR and
  the ImageNet subset;
- :mod:`~sem_jax.data.prepared`: decoded datasets cached once as memory-mapped arrays;
- :mod:`~sem_jax.data.rows`: row tables read, not held (lazy protected images, shards);
- :mod:`~sem_jax.data.order`: which indices each step reads, from (seed, step).

Nothing here runs a model or knows a run config.
"""
