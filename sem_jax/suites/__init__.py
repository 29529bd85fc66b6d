"""The suites: many runs as one resumable piece of work.

- [`study`][sem_jax.suites.study]: experiments (a noise, its victims at several PGD-AT radii)
  grouped into tables and plots; the efficacy benchmark is one study config;
- [`pool`][sem_jax.suites.pool]: a study's experiments as worker processes sharing a machine.
"""
