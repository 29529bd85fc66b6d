"""The file layer: paths local or in a bucket ([`fs`][sem_jax.files.fs]), files written whole
or not at all and their digests ([`atomic`][sem_jax.files.atomic]), image files
([`images`][sem_jax.files.images]). No pickle anywhere."""
