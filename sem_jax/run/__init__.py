"""The run layer: what turns the math into resumable, verified runs in a workdir.

- :mod:`~sem_jax.run.config`, :mod:`~sem_jax.run.fields`, :mod:`~sem_jax.run.configfile`:
  the run configs (pixel levels), their checks, config files and ``--config.FIELD`` overrides;
- :mod:`~sem_jax.run.specs`: configs -> the math's specs (the one levels -> fractions place);
  :mod:`~sem_jax.run.build`: a config's model, optimizer and state;
- :mod:`~sem_jax.run.identity`, :mod:`~sem_jax.run.legacy`: what a run is, and the rules that
  keep older workdirs resumable;
- :mod:`~sem_jax.run.loop`: the resumable loop scaffold; :mod:`~sem_jax.run.checkpoint`:
  verified orbax checkpoints; :mod:`~sem_jax.run.metrics`, :mod:`~sem_jax.run.plots`;
- :mod:`~sem_jax.run.artifacts`: noise tables and manifests; :mod:`~sem_jax.run.victim`: a
  finished victim;
- :mod:`~sem_jax.run.sharding`, :mod:`~sem_jax.run.steps`, :mod:`~sem_jax.run.runtime`:
  devices, hosts and the jitted steps; :mod:`~sem_jax.run.inputs`: a config's dataset.
"""
