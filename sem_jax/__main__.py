"""``python -m sem_jax COMMAND ...``: the command line (the same program as ``run.py`` and
``sem-jax``)."""
import sys

from sem_jax.cli import main

sys.exit(main())
