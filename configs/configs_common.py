"""Helper for configs that are small variants of another config file in this folder."""
import os

from sem_jax.configfile import load_config_file


def derive(base_file: str, **changes):
  """Load ``base_file`` (relative to this folder) and replace a few fields."""
  return load_config_file(os.path.join(os.path.dirname(__file__), base_file)).replace(**changes)
