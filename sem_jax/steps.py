"""The jitted steps of noise generation (SPEC section 4), pure functions of specs and pytrees.

Config fields in pixel levels become a :class:`GenSpec` (fractions of [0, 1], method parts
chosen) once, in :func:`gen_spec`; the steps take that spec and nothing else from the
config. Batches are dicts ``{x: uint8 (B, H, W, C), y: (B,), idx: (B,) dataset indices
[, valid: (B,) bool]}``, batch-sharded as one pytree; the surrogate state and the root key
are replicated; the int8 noise table (pixel levels) is row-sharded.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp

from sem_jax import keys as K, noise as N, sharding, train
from sem_jax.attacks import AttackSpec
from sem_jax.augment import model_view, train_view
from sem_jax.data import normalize
from sem_jax.methods import METHODS
from sem_jax.runtime import loops_unrolled

NO_ATTACK = AttackSpec(0.0, 0, 0.0)


@dataclasses.dataclass(frozen=True)
class GenSpec:
  """Everything the generation steps compute with (static, fractions of [0, 1])."""
  craft: N.CraftSpec          # the defensive-noise step
  augment_pad: int            # surrogate training view: pad-and-crop padding; < 0: none
  crop_size: int              # >0: random-resized crops (train) / centre crops (test)
  attack: AttackSpec          # the surrogate's PGD-AT (inactive: standard training)
  num_classes: int
  next_class_target: bool     # TAP: descend toward (y + 1) mod num_classes
  release_em: bool = False    # EM as the release's generate_em.py (see release_view)


def gen_spec(cfg, num_classes: int) -> GenSpec:
  """The specs of a GenerateConfig (pixel levels -> fractions, method -> parts)."""
  parts = METHODS[cfg.method]
  attack = (AttackSpec.from_levels(cfg.adv_radius, cfg.adv_steps, cfg.adv_step_size,
                                   cfg.adv_norm, loops_unrolled(cfg.unroll_loops))
            if parts.robust_surrogate else NO_ATTACK)
  craft = N.craft_spec(cfg)
  release_em = cfg.method == "em" and cfg.em_variant == "release"
  if release_em:   # one already-augmented view, no expectation, x + δ kept in the valid range
    craft = dataclasses.replace(craft, augment_pad=-1, crop_size=0, num_samples=1, project=True)
  return GenSpec(craft, cfg.augment_pad if cfg.augment else -1, cfg.crop_size,
                 attack, num_classes, parts.target == "next_class", release_em)


def release_view(spec: GenSpec, x_u8, keys):
  """The release EM's crafting input: the loader's augmented view t(x) (normalised). Its δ
  is descended on t(x) alone and stored as the noise of x: in t's coordinates, not x's."""
  return train_view(normalize(x_u8), keys, spec.augment_pad, spec.crop_size)


def outer_step(model, tx, spec: GenSpec, state, table, root, batch):
  """One outer step: craft δ for the batch, write it into the table, train on t(x + noise).

  Args:
    state: TrainState; table: (N_pad, H, W, C) int8 noise table (pixel levels);
    root: the run's root key as uint32 key data; batch: {x, y, idx}.
  Returns:
    (new state, table with rows idx replaced, metrics dict of scalars).
  """
  x_u8, y, idx = batch["x"], batch["y"], batch["idx"]
  keys = K.per_sample(K.stream(jax.random.wrap_key_data(root), K.OUTER, state.step), idx)
  k_craft, k_aug, k_adv = K.split_each(keys, 3)
  if spec.release_em:   # craft on t(x), train on clip(t(x) + δ) with float16 δ, as the release
    view = release_view(spec, x_u8, k_aug)
    delta = N.craft(spec.craft, train.eval_logits_fn(model, state), view, y, k_craft)
    noise = N.quantize(delta, spec.craft.radius_levels)
    x_in = jnp.clip(view + delta.astype(jnp.float16).astype(jnp.float32), -0.5, 0.5)
  else:
    delta = N.craft(spec.craft, train.eval_logits_fn(model, state), normalize(x_u8), y, k_craft)
    noise = N.quantize(delta, spec.craft.radius_levels)
    x_in = train_view(N.apply_noise(x_u8, noise), k_aug, spec.augment_pad, spec.crop_size)
  table = table.at[idx].set(noise)
  x_in = train.adversarial_inputs(model, state, x_in, y, k_adv, spec.attack)
  new_state, metrics = train.update(
      model, tx, state, x_in, y,
      dropout_key=K.stream(jax.random.wrap_key_data(root), K.DROPOUT, state.step))
  metrics["noise_abs_mean"] = jnp.mean(jnp.abs(noise.astype(jnp.float32)))
  return new_state, table, metrics


def final_step(model, spec: GenSpec, state, acc, root, batch):
  """Final-pass noise for a batch with the frozen final surrogate, written into the table.

  ``acc`` = {table: the int8 table, written: (N_pad,) int32 writes per row}; padded batch
  entries (valid False) repeat a real index and count nothing.
  """
  x_u8, y, idx = batch["x"], batch["y"], batch["idx"]
  keys = K.per_sample(K.stream(jax.random.wrap_key_data(root), K.FINAL), idx)
  target = (y + 1) % spec.num_classes if spec.next_class_target else y
  if spec.release_em:   # the release regenerates the noise on one more augmented view
    k_view, keys = K.split_each(keys, 2)
    x = release_view(spec, x_u8, k_view)
  else:
    x = normalize(x_u8)
  delta = N.make_noise(spec.craft, train.eval_logits_fn(model, state), x, target, keys)
  return {"table": acc["table"].at[idx].set(N.quantize(delta, spec.craft.radius_levels)),
          "written": acc["written"].at[idx].add(batch["valid"].astype(jnp.int32))}


def correct_count(model, crop_size: int, state, batch):
  """Number of valid entries of the batch that the eval-mode model classifies correctly."""
  pred = jnp.argmax(train.predict(model, state, model_view(normalize(batch["x"]), crop_size)), -1)
  return jnp.sum((pred == batch["y"]) & batch["valid"])


def robust_correct_count(model, spec: GenSpec, state, root, batch):
  """Valid entries still classified correctly under the surrogate's own PGD (spec.attack)."""
  keys = K.per_sample(K.stream(jax.random.wrap_key_data(root), K.EVAL), batch["idx"])
  x = model_view(normalize(batch["x"]), spec.crop_size)
  x = train.adversarial_inputs(model, state, x, batch["y"], keys, spec.attack)
  pred = jnp.argmax(train.predict(model, state, x), -1)
  return jnp.sum((pred == batch["y"]) & batch["valid"])


@dataclasses.dataclass(frozen=True)
class Steps:
  """The run's jitted functions, built once per (model, spec, mesh)."""
  outer: Callable     # (state, table, root, batch) -> (state, table, metrics)
  final: Callable     # (state, {table, written}, root, batch) -> {table, written}
  correct: Callable   # (state, batch) -> number of correct predictions
  robust: Callable    # (state, root, batch) -> number correct under the surrogate's PGD


def build_steps(model, tx, spec: GenSpec, mesh, donate: bool = True) -> Steps:
  """Jit the steps for ``mesh``: state and root replicated, table and batch row-sharded.

  ``donate``: reuse the buffers of the state and the table (the loop); False lets a
  caller call a step repeatedly on the same arguments (the benchmark).
  """
  rep, bat = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  outer = jax.jit(functools.partial(outer_step, model, tx, spec),
                  in_shardings=(rep, bat, rep, bat), out_shardings=(rep, bat, rep),
                  donate_argnums=(0, 1) if donate else ())
  final = jax.jit(functools.partial(final_step, model, spec),
                  in_shardings=(rep, bat, rep, bat), out_shardings=bat,
                  donate_argnums=(1,) if donate else ())
  correct = jax.jit(functools.partial(correct_count, model, spec.crop_size),
                    in_shardings=(rep, bat), out_shardings=rep)
  robust = jax.jit(functools.partial(robust_correct_count, model, spec),
                   in_shardings=(rep, rep, bat), out_shardings=rep)
  return Steps(outer, final, correct, robust)
