"""The run layer: what turns the math into resumable, verified runs in a workdir.

- [`config`][sem_jax.run.config], [`fields`][sem_jax.run.fields], [`configfile`][sem_jax.run.configfile]:
  the run configs (pixel levels), their checks, config files and ``--config.FIELD`` overrides;
- [`specs`][sem_jax.run.specs]: configs -> the math's specs (the one levels -> fractions place);
  [`build`][sem_jax.run.build]: a config's model, optimizer and state;
- [`identity`][sem_jax.run.identity], [`legacy`][sem_jax.run.legacy]: what a run is, and the rules that
  keep older workdirs resumable;
- [`loop`][sem_jax.run.loop]: the resumable loop scaffold; [`checkpoint`][sem_jax.run.checkpoint]:
  verified orbax checkpoints; [`metrics`][sem_jax.run.metrics], [`plots`][sem_jax.run.plots];
- [`artifacts`][sem_jax.run.artifacts]: noise tables and manifests; [`victim`][sem_jax.run.victim]: a
  finished victim;
- [`sharding`][sem_jax.run.sharding], [`steps`][sem_jax.run.steps], [`runtime`][sem_jax.run.runtime]:
  devices, hosts and the jitted steps; [`inputs`][sem_jax.run.inputs]: a config's dataset.
"""
