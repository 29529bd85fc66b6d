"""Config files and command-line overrides.

Config files are Python modules (under ``configs/``) whose ``get_config()`` returns a
run config (the flax / big_vision convention). A config file inside a folder tree of
packages (folders with ``__init__.py``, as ``configs/`` is) is imported as a module of that
package, so it imports its neighbours relatively (``from .sem import get_config as sem``,
``from ..study.common import row``) with no ``sys.path`` edit. ``--config.FIELD=VALUE`` on the
command line overrides one field; the value is parsed with the field's type.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.util
import os
import sys
from typing import Any, Callable, Sequence

from sem_jax.errors import SemJaxError
from sem_jax.run import couplings
from sem_jax.run.config import GenerateConfig


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


def _first_line(e: Exception) -> str:
  return str(e).splitlines()[0] if str(e) else ""


def unknown_field(shown: str, name: str, fields) -> str:
  """The one-line error for an override of a field ``name`` the config does not have, with the
  nearest field names (``shown``: the name as the user typed it, e.g. evaluation.train_step)."""
  near = difflib.get_close_matches(name, list(fields), n=3, cutoff=0.6)
  hint = (f"did you mean {' or '.join(near)}?" if near else
          "the fields and their units: sem_jax/run/config.py, docs/cli.md")
  return f"unknown config field {shown!r}; {hint}"


def apply_overrides(cfg, overrides: Sequence[str], log: Callable[[str], None] | None = None,
                    prefix: str = ""):
  """Apply ``FIELD=VALUE`` strings (the part after ``--config.``) to a config dataclass.

  An override that switches ``model``, ``dataset`` or ``method`` resets the fields coupled to
  the old choice to the new one's defaults ([`sem_jax.run.couplings`][sem_jax.run.couplings]),
  save those the overrides set; ``log`` gets one line per reset field. A config with a
  ``nested_override(name, value)`` method (a study: ``evaluation.FIELD``, ``generate.FIELD``)
  takes the dotted names it knows itself; ``prefix`` is how the user named ``cfg`` (e.g.
  ``evaluation.``), for the messages.
  """
  before = cfg
  fields = {f.name: f for f in dataclasses.fields(cfg)}
  changes: dict[str, Any] = {}
  for item in overrides:
    if "=" not in item:
      raise SemJaxError(f"--config.{item}: expected --config.FIELD=VALUE")
    name, value = item.split("=", 1)
    if "." in name and hasattr(cfg, "nested_override"):
      cfg = dataclasses.replace(cfg, **changes).nested_override(name, value)
      changes = {}
      continue
    if name not in fields:
      raise SemJaxError(unknown_field(prefix + name, name, fields))
    changes[name] = _parse_value(fields[name], value, getattr(cfg, name))
  cfg = dataclasses.replace(cfg, **changes)
  overridden = {item.split("=", 1)[0] for item in overrides}
  cfg, notes = couplings.resolve(before, cfg, overridden)   # a study has none of the choices
  for note in notes if log else ():
    log(f"config: {note}")
  return cfg


def _package_of(folder: str) -> str | None:
  """Register the package tree that ``folder`` belongs to (its folders with ``__init__.py``,
  up to the topmost) as modules, and return the dotted name of ``folder``'s package; None
  when ``folder`` holds no ``__init__.py``. The top gets a name unique to its path."""
  chain = []
  d = os.path.abspath(folder)
  while os.path.isfile(os.path.join(d, "__init__.py")):
    chain.append(d)
    d = os.path.dirname(d)
  if not chain:
    return None
  top = chain[-1]
  name = "sem_jax_configs_" + hashlib.sha256(top.encode()).hexdigest()[:12]
  for d in reversed(chain):
    if d != top:
      name = f"{name}.{os.path.basename(d)}"
    if name not in sys.modules:
      spec = importlib.util.spec_from_file_location(name, os.path.join(d, "__init__.py"),
                                                    submodule_search_locations=[d])
      module = importlib.util.module_from_spec(spec)
      sys.modules[name] = module
      spec.loader.exec_module(module)
  return name


def load_config_file(path: str) -> Any:
  """Import a Python config file and return its ``get_config()``."""
  if not os.path.isfile(path):
    raise SemJaxError(f"config file not found: {path}")
  stem = os.path.splitext(os.path.basename(path))[0]
  try:
    package = _package_of(os.path.dirname(os.path.abspath(path)))
    name = f"{package}.{stem}" if package else "sem_jax_user_config_" + stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
      raise SemJaxError(f"cannot import config file {path}")
    module = importlib.util.module_from_spec(spec)
    if package:
      sys.modules[name] = module   # so a neighbour's relative import of it finds this one
    spec.loader.exec_module(module)
  except SemJaxError:
    raise
  except Exception as e:
    raise SemJaxError(f"config file {path} failed to load: {type(e).__name__}: "
                      f"{_first_line(e)}") from None
  if not hasattr(module, "get_config"):
    raise SemJaxError(f"config file {path} defines no get_config()")
  try:
    return module.get_config()
  except SemJaxError as e:
    raise SemJaxError(f"config file {path}: {e}") from None
  except Exception as e:
    raise SemJaxError(f"config file {path}: get_config() failed: {type(e).__name__}: "
                      f"{_first_line(e)}") from None


def load_config(path: str, overrides: Sequence[str] = (), kind: type = GenerateConfig,
                log: Callable[[str], None] | None = None):
  """Load a config file whose get_config() returns a ``kind``, apply overrides (``log``: the
  fields they reset, [`apply_overrides`][sem_jax.run.configfile.apply_overrides]), validate."""
  cfg = load_config_file(path)
  if not isinstance(cfg, kind):
    raise SemJaxError(f"{path}: get_config() must return a {kind.__name__} for this command, "
                      f"got {type(cfg).__name__}")
  return apply_overrides(cfg, overrides, log).validate()
