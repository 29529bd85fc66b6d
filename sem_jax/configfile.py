"""Config files and command-line overrides.

Config files are Python modules (under ``configs/``) whose ``get_config()`` returns a
run config (the flax / big_vision convention). ``--config.FIELD=VALUE`` on the command
line overrides one field; the value is parsed with the field's type.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from typing import Any, Sequence

from sem_jax.config import EfficacyConfig, GenerateConfig
from sem_jax.errors import SemJaxError


def _parse_value(field: dataclasses.Field, text: str, current: Any = None) -> Any:
  if field.type in ("tuple", tuple):   # comma-separated, each item typed like the current items
    item = type(current[0]) if current else str
    fake = dataclasses.field()
    fake.name, fake.type = field.name, item
    return tuple(_parse_value(fake, t) for t in text.split(",") if t.strip())
  typ = field.type if isinstance(field.type, type) else {"int": int, "float": float, "str": str,
                                                          "bool": bool}.get(field.type)
  if typ is None:
    raise SemJaxError(f"--config.{field.name} cannot be set from the command line")
  if typ is bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
      return True
    if low in ("0", "false", "no", "off"):
      return False
    raise SemJaxError(f"--config.{field.name}: expected true/false, got {text!r}")
  try:
    if typ is int:
      f = float(text)
      if not f.is_integer():
        raise ValueError
      return int(f)
    return typ(text)
  except ValueError:
    raise SemJaxError(f"--config.{field.name}: expected {typ.__name__}, got {text!r}") from None


def apply_overrides(cfg, overrides: Sequence[str]):
  """Apply ``FIELD=VALUE`` strings (the part after ``--config.``) to a config dataclass.

  For an :class:`EfficacyConfig`, ``evaluation.FIELD=V`` sets a victim field and
  ``generate.FIELD=V`` sets that field of every generator config.
  """
  fields = {f.name: f for f in dataclasses.fields(cfg)}
  changes: dict[str, Any] = {}
  for item in overrides:
    if "=" not in item:
      raise SemJaxError(f"--config.{item}: expected --config.FIELD=VALUE")
    name, value = item.split("=", 1)
    if isinstance(cfg, EfficacyConfig) and name.startswith("evaluation."):
      ev = changes.get("evaluation", cfg.evaluation)
      changes["evaluation"] = apply_overrides(ev, [item[len("evaluation."):]])
      continue
    if isinstance(cfg, EfficacyConfig) and name.startswith("generate."):
      gens = changes.get("generators", cfg.generators)
      changes["generators"] = {m: apply_overrides(g, [item[len("generate."):]])
                               for m, g in gens.items()}
      continue
    if name not in fields:
      raise SemJaxError(f"unknown config field {name!r} (known: {', '.join(sorted(fields))})")
    changes[name] = _parse_value(fields[name], value, getattr(cfg, name))
  return dataclasses.replace(cfg, **changes)


def load_config_file(path: str) -> Any:
  """Import a Python config file and return its ``get_config()``."""
  if not os.path.isfile(path):
    raise SemJaxError(f"config file not found: {path}")
  name = "sem_jax_user_config_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  if spec is None or spec.loader is None:
    raise SemJaxError(f"cannot import config file {path}")
  module = importlib.util.module_from_spec(spec)
  folder = os.path.dirname(os.path.abspath(path))
  sys.path.insert(0, folder)  # configs may import helpers that sit beside them
  try:
    spec.loader.exec_module(module)
  except SemJaxError:
    raise
  except Exception as e:
    raise SemJaxError(f"config file {path} failed to load: {type(e).__name__}: {e}") from None
  finally:
    sys.path.remove(folder)
  if not hasattr(module, "get_config"):
    raise SemJaxError(f"config file {path} defines no get_config()")
  return module.get_config()


def load_config(path: str, overrides: Sequence[str] = (), kind: type = GenerateConfig):
  """Load a config file whose get_config() returns a ``kind``, apply overrides, validate."""
  cfg = load_config_file(path)
  if not isinstance(cfg, kind):
    raise SemJaxError(f"{path}: get_config() must return a {kind.__name__} for this command, "
                      f"got {type(cfg).__name__}")
  return apply_overrides(cfg, overrides).validate()
