"""The data layer: datasets as validated uint8 arrays and where they come from.

- [`dataset`][sem_jax.data.dataset]: the [`Dataset`][Dataset] type, its validation and fingerprint;
- [`sources`][sem_jax.data.sources]: the offline sets, a user's npz, [`load_dataset`][load_dataset];
- [`folder`][sem_jax.data.folder]: a user's image folder; [`tfds`][sem_jax.data.tfds]: CIFAR and
  the ImageNet subset;
- [`prepared`][sem_jax.data.prepared]: decoded datasets cached once as memory-mapped arrays;
- [`rows`][sem_jax.data.rows]: row tables read, not held (lazy protected images, shards);
- [`order`][sem_jax.data.order]: which indices each step reads, from (seed, step).

Nothing here runs a model or knows a run config.
"""
