"""Orbax checkpoints of the full generation state, checked on restore.

A checkpoint holds two items: ``state`` (surrogate params, batch_stats,
optimizer state, step, the run's PRNG key data and the int8 noise table) and
``meta`` (JSON: the run fingerprint, step, shapes). Restoring verifies the
fingerprint and every array's shape and dtype; orbax alone would silently
restore whatever shapes were saved.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from sem_jax.errors import SemJaxError


def _leaf_sig(x) -> tuple:
  return (tuple(np.shape(x)), str(np.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype))


class Checkpoints:
  """Saves and restores {state, meta} under ``directory`` with orbax."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._mngr = ocp.CheckpointManager(
        self.directory, item_names=("state", "meta"),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mngr.all_steps())

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Save asynchronously; host numpy leaves must not be mutated until ``wait()`` (pass copies)."""
    self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                  meta=ocp.args.JsonSave(meta)), force=True)

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def restore(self, step: int, target: Any, fingerprint: str) -> tuple[Any, dict]:
    """Restore step into the structure of ``target`` after checking that it belongs to this run."""
    where = os.path.join(self.directory, str(step))
    try:
      meta = self._mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:
      raise SemJaxError(f"checkpoint {where} is unreadable or corrupted: {_first_line(e)}") from None
    if meta.get("fingerprint") != fingerprint:
      raise SemJaxError(f"checkpoint {where} belongs to a different config or dataset "
                        "(fingerprint mismatch); use a new workdir")
    try:
      restored = self._mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target)))["state"]
    except Exception as e:
      raise SemJaxError(f"checkpoint {where} is unreadable or corrupted: {_first_line(e)}") from None
    want = jax.tree.map(_leaf_sig, target)
    got = jax.tree.map(_leaf_sig, restored)
    if jax.tree.structure(want) != jax.tree.structure(got) or want != got:
      raise SemJaxError(f"checkpoint {where} does not match the requested model or dataset shapes")
    return restored, meta

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()


def _first_line(e: BaseException) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else type(e).__name__
