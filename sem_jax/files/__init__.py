"""The file layer: paths local or in a bucket (:mod:`~sem_jax.files.fs`), files written whole
or not at all and their digests (:mod:`~sem_jax.files.atomic`), image files
(:mod:`~sem_jax.files.images`). No pickle anywhere."""
