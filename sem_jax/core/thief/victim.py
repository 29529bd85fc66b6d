"""The victim's training step (docs/method.md, "Evaluation protocol"): a pure function of a
[`VictimSpec`][VictimSpec] and pytrees, jitted for a mesh by ``sem_jax.run.steps``.

Per batch: the victim's flip + crop augmentation, ECLIPSE's compensation, COIN, cutout, UEraser's augmentations (the step
on the maximum loss over K draws while ``step < ueraser_max_until``, on one draw after),
PGD adversarial training at ρa, mixup or cutmix, then one optimizer step. [`phase`][phase]
resolves UEraser's two phases statically for a known step (XLA:CPU runs a ``lax.cond``'s
branches ~15x slower than the same code unconditioned). Every draw is keyed by (seed, step, position in the
training set), so a victim resumes from its checkpoint to the bit-identical model.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from sem_jax.core import attacks, keys as K, train

from sem_jax.core.thief import defenses as D, eclipse as E, ueraser as U
from sem_jax.core.augment import model_view, train_view
from sem_jax.core.units import normalize


@dataclasses.dataclass(frozen=True)
class VictimSpec:
  """What the victim's step computes with (static; radii in pixel levels)."""
  augment_pad: int                    # flip + pad-and-crop padding; < 0: no augmentation
  crop_size: int                      # >0: random-resized crops (train) / centre crops (test)
  attack: attacks.AttackSpec          # PGD-AT (inactive: standard training)
  cutout_size: int = 0                # > 0: cutout of this side, pixels
  coin_alpha: float = 0.0             # > 0: COIN, pixel displacements U[-α, α]
  mix: Callable | None = None         # mixup / cutmix: (x, y, key) -> (x, y, y2, λ)
  ueraser_draws: int = 0              # > 0: UEraser, max loss over this many draws
  ueraser_max_until: int = 0          # steps trained on the max loss (then one draw);
                                      # ALWAYS: every step
  eclipse: tuple | None = None        # ECLIPSE's compensation (gray_p, noise_std); None: off


ALWAYS = 2 ** 31 - 1
COIN_STREAM = 7       # COIN's draws: folded into the cutout key of each sample
ECLIPSE_STREAM = 8    # ECLIPSE's compensation draws: folded in likewise


def phase(spec: VictimSpec, step: int) -> VictimSpec:
  """The spec whose step computes, without a conditional, what ``spec``'s step computes at
  training step ``step`` (UEraser's max-loss phase or its one-draw phase; other specs as
  they are)."""
  if not spec.ueraser_draws or spec.ueraser_max_until in (0, ALWAYS):
    return spec
  return dataclasses.replace(spec, ueraser_max_until=ALWAYS if step < spec.ueraser_max_until
                             else 0)


def victim_step(model, tx, spec: VictimSpec, state, root, batch):
  """One victim update: augment, COIN, cutout, PGD-AT, mixup/cutmix, SGD. Pure; returns (state, metrics).

  ``batch`` = {x: uint8 images, y: labels, idx: positions in the training set (they seed
  the per-sample draws)}.
  """
  y = batch["y"]
  keys = K.per_sample(K.stream(jax.random.wrap_key_data(root), K.OUTER, state.step), batch["idx"])
  k_aug, k_cut, k_adv = K.split_each(keys, 3)
  x = train_view(normalize(batch["x"]), k_aug, spec.augment_pad, spec.crop_size)
  if spec.eclipse is not None:        # after the flip and crop, as the release's transform
    x = E.compensate(x, jax.vmap(lambda k: jax.random.fold_in(k, ECLIPSE_STREAM))(k_cut),
                     *spec.eclipse)
  if spec.coin_alpha:                  # its own stream, so that other defenses keep their draws
    x = D.coin(x, jax.vmap(lambda k: jax.random.fold_in(k, COIN_STREAM))(k_cut), spec.coin_alpha)
  if spec.cutout_size:
    x = D.cutout(x, k_cut, spec.cutout_size)
  dropout = K.stream(jax.random.wrap_key_data(root), K.DROPOUT, state.step)
  if spec.ueraser_draws:
    return _ueraser_step(model, tx, spec, state, x, y, keys, k_adv, dropout)
  x = train.adversarial_inputs(model, state, x, y, k_adv, spec.attack)
  y2, lam = None, 1.0
  if spec.mix is not None:
    x, y, y2, lam = spec.mix(x, y, K.stream(jax.random.wrap_key_data(root), K.BATCH, state.step))
  return train.update(model, tx, state, x, y, y2, lam, dropout)


def _ueraser_step(model, tx, spec: VictimSpec, state, x, y, keys, k_adv, dropout):
  """UEraser: K draws (each PGD-attacked where PGD-AT is on) and the max-loss step while
  ``step < ueraser_max_until``; one draw and the plain step after."""
  def view(k):
    kk = jax.vmap(lambda key: jax.random.fold_in(key, 1000 + k))(keys)
    ka = jax.vmap(lambda key: jax.random.fold_in(key, k))(k_adv)
    return train.adversarial_inputs(model, state, U.ueraser(x, kk), y, ka, spec.attack)

  def worst(state):
    return train.update_max_over_views(model, tx, state, [view(k) for k in
                                                          range(spec.ueraser_draws)], y, dropout)

  def one(state):
    return train.update(model, tx, state, view(0), y, None, 1.0, dropout)

  if spec.ueraser_max_until <= 0:
    return one(state)
  if spec.ueraser_max_until == ALWAYS:
    return worst(state)
  return jax.lax.cond(state.step < spec.ueraser_max_until, worst, one, state)


def eval_batch(model, crop_size: int, state, batch):
  """Eval-mode (prediction, per-sample CE) on clean inputs (centre crops when crop_size > 0)."""
  logits = train.predict(model, state, model_view(normalize(batch["x"]), crop_size))
  return jnp.argmax(logits, -1), attacks.ce(logits, batch["y"])
