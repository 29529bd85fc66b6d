"""The math's pure steps jitted for a mesh: state and root key replicated, the batch and the
noise table row-sharded over the ``data`` axis ([`sem_jax.run.sharding`][sem_jax.run.sharding])."""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax

from sem_jax.core.crafting import generation as G

from sem_jax.core.thief import victim as V
from sem_jax.run import sharding


@dataclasses.dataclass(frozen=True)
class Steps:
  """A generation run's jitted functions, built once per (model, spec, mesh)."""
  outer: Callable     # (state, table, root, batch) -> (state, table, metrics)
  final: Callable     # (state, {table, written}, root, batch) -> {table, written}
  correct: Callable   # (state, batch) -> number of correct predictions
  robust: Callable    # (state, root, batch) -> number correct under the surrogate's PGD


def generation_steps(model, tx, spec: G.GenSpec, mesh, donate: bool = True) -> Steps:
  """Jit the generation steps for ``mesh``.

  ``donate``: reuse the buffers of the state and the table (the loop); False lets a
  caller call a step repeatedly on the same arguments (the benchmark).
  """
  rep, bat = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  outer = jax.jit(functools.partial(G.outer_step, model, tx, spec),
                  in_shardings=(rep, bat, rep, bat), out_shardings=(rep, bat, rep),
                  donate_argnums=(0, 1) if donate else ())
  final = jax.jit(functools.partial(G.final_step, model, spec),
                  in_shardings=(rep, bat, rep, bat), out_shardings=bat,
                  donate_argnums=(1,) if donate else ())
  correct = jax.jit(functools.partial(G.correct_count, model, spec.crop_size),
                    in_shardings=(rep, bat), out_shardings=rep)
  robust = jax.jit(functools.partial(G.robust_correct_count, model, spec),
                   in_shardings=(rep, rep, bat), out_shardings=rep)
  return Steps(outer, final, correct, robust)


def victim_steps(model, tx, spec: V.VictimSpec, mesh):
  """(step: (state, root, batch, step number) -> (state, metrics), evaluate: (state, batch)
  -> (pred, CE)). ``step`` runs the jitted step of the spec's phase at that step number
  ([`sem_jax.core.thief.victim.phase`][sem_jax.core.thief.victim.phase]), each phase compiled once."""
  rep, bat = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  jitted = {}

  def step(state, root, batch, number: int):
    s = V.phase(spec, number)
    if s not in jitted:
      jitted[s] = jax.jit(functools.partial(V.victim_step, model, tx, s),
                          in_shardings=(rep, rep, bat), out_shardings=(rep, rep),
                          donate_argnums=(0,))
    return jitted[s](state, root, batch)

  evaluate = jax.jit(functools.partial(V.eval_batch, model, spec.crop_size),
                     in_shardings=(rep, bat), out_shardings=(bat, bat))
  return step, evaluate
