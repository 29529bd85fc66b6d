"""The commands: one module per ``run.py`` subcommand that does work.

``generate``, ``evaluate``, ``export`` (and its [`formats`][sem_jax.commands.formats]), ``verify``,
``visualize``, ``import_noise``, ``bench`` and ``bench_data``. Each is a function a notebook
may call too; [`sem_jax.cli`][sem_jax.cli] only parses arguments and dispatches to them.
"""
