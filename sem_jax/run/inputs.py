"""The dataset a run config names, loaded for this process of the run.

In a run of several processes the prepared cache is made collectively (process 0 first, then
any host whose cache folder is its own), and only process 0 prints its progress.
"""
from __future__ import annotations

import jax

from sem_jax.data.dataset import Dataset
from sem_jax.data.sources import load_dataset
from sem_jax.run import sharding


def dataset_for(cfg, log=None) -> Dataset:
  """The dataset of a GenerateConfig or EvalConfig (its dataset fields and ``data_cache``),
  loaded and validated."""
  lead = jax.process_index() == 0
  if log is None:
    log = print if lead else (lambda _: None)
  group = (lead, sharding.sync) if jax.process_count() > 1 else None
  return load_dataset(cfg.dataset, cfg.data_dir, cfg.num_classes, cfg.image_size,
                      cfg.test_fraction, getattr(cfg, "data_cache", "off"), log, group)
