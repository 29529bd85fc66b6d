"""The steps of noise generation (docs/method.md, "The noise generators"): pure functions of a
[`GenSpec`][GenSpec] and pytrees, jitted for a mesh by ``sem_jax.run.steps``.

Batches are dicts ``{x: uint8 (B, H, W, C), y: (B,), idx: (B,) dataset indices
[, valid: (B,) bool]}``; ``root`` is the run's root key as uint32 key data; the noise table is
int8 pixel levels (N_pad, H, W, C). Every random draw is keyed by (stream, step, dataset
index), so a sample's draws do not depend on the batch it is in or on the device count.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from sem_jax.core import checks, keys as K, train
from sem_jax.core.attacks import NO_ATTACK, AttackSpec
from sem_jax.core.augment import model_view, train_view
from sem_jax.core.crafting import noise as N
from sem_jax.core.units import clip_input, normalize


@dataclasses.dataclass(frozen=True)
class GenSpec:
  """Everything the generation steps compute with (static; radii in pixel levels)."""
  craft: N.CraftSpec          # the defensive-noise step (its adversary: the surrogate's PGD-AT)
  augment_pad: int            # surrogate training view: pad-and-crop padding; < 0: none
  crop_size: int              # >0: random-resized crops (train) / centre crops (test)
  release_em: bool = False    # EM as the release's generate_em.py (see release_view)

  @property
  def attack(self) -> AttackSpec:
    """The surrogate's PGD-AT: the crafter's adversary for SEM and REM, none for the others."""
    return self.craft.adversary if self.craft.parts.robust_surrogate else NO_ATTACK


def release_view(spec: GenSpec, x_u8, keys):
  """The release EM's crafting input: the loader's augmented view t(x) (normalised). Its δ
  is descended on t(x) alone and stored as the noise of x: in t's coordinates, not x's."""
  return train_view(normalize(x_u8), keys, spec.augment_pad, spec.crop_size)


def surrogate_step(model: nn.Module, tx: optax.GradientTransformation, state: train.TrainState,
                   x_uint8: jax.Array, noise: jax.Array, y: jax.Array, aug_keys: jax.Array,
                   adv_keys: jax.Array, *, attack: AttackSpec, augment_pad: int = 4,
                   crop_size: int = 0, dropout_key: jax.Array | None = None,
                   mode: train.Mode = None) -> tuple[train.TrainState, dict[str, jax.Array]]:
  """One step of the SEM / REM surrogate (docs/method.md, "The outer loop"): train on PGD-AT
  inputs made from augmented protected images, ``PGD(t(protect(x, noise)))``.

  Args:
    model: the surrogate, a flax module.
    tx: its optax transformation.
    state: its [`TrainState`][sem_jax.core.train.TrainState].
    x_uint8: (B, H, W, C) uint8 clean images.
    noise: (B, H, W, C) int8 noise in pixel levels.
    y: (B,) labels.
    aug_keys: (B,) per-sample keys of the augmentation.
    adv_keys: (B,) per-sample keys of the attack's random start.
    attack: the surrogate's adversary ([`AttackSpec`][sem_jax.core.attacks.AttackSpec], levels);
      ``core.NO_ATTACK`` trains normally (EM's surrogate).
    augment_pad: pad-and-crop padding in pixels (< 0: no augmentation).
    crop_size: > 0 for random-resized crops of that size.
    dropout_key: this step's dropout key (models with dropout).
    mode: the model's train / eval switch ([`sem_jax.core.train.mode_switch`][sem_jax.core.train.mode_switch]).

  Returns:
    (new state, {"loss", "accuracy"}) as [`sem_jax.core.train.update`][sem_jax.core.train.update].

  Example:
    >>> import jax, numpy as np
    >>> from sem_jax import core
    >>> model, tx = core.create_model("linear", 4), core.paper_sgd(0.1)
    >>> state = core.init_state(model, tx, jax.random.key(0), (8, 8, 1))
    >>> x, noise = np.zeros((2, 8, 8, 1), np.uint8), np.ones((2, 8, 8, 1), np.int8)
    >>> keys = core.per_sample(jax.random.key(1), np.arange(2))
    >>> state, m = core.surrogate_step(model, tx, state, x, noise, np.array([0, 3]), keys, keys,
    ...                                attack=core.AttackSpec(radius=4, steps=1, step_size=4))
    >>> int(state.step)
    1
  """
  checks.uint8_images(x_uint8, "surrogate_step")
  x_in = train_view(N.apply_noise(x_uint8, noise), aug_keys, augment_pad, crop_size)
  return train.adversarial_update(model, tx, state, x_in, y, adv_keys, attack,
                                  dropout_key=dropout_key, mode=mode)


def outer_step(model: nn.Module, tx: optax.GradientTransformation, spec: GenSpec,
               state: train.TrainState, table: jax.Array, root: jax.Array,
               batch: dict) -> tuple[train.TrainState, jax.Array, dict]:
  """One outer step: craft the batch's noise, write it into the table, and take the
  surrogate's step ([`surrogate_step`][sem_jax.core.crafting.generation.surrogate_step]) on the protected batch.

  Args:
    model: the surrogate, a flax module.
    tx: its optax transformation.
    spec: the generation's spec.
    state: the surrogate's TrainState.
    table: (N_pad, H, W, C) int8 noise table (pixel levels).
    root: the run's root key as uint32 key data.
    batch: {x, y, idx}.

  Returns:
    (new state, table with rows idx replaced, metrics dict of scalars).
  """
  x_u8, y, idx = batch["x"], batch["y"], batch["idx"]
  keys = K.per_sample(K.stream(jax.random.wrap_key_data(root), K.OUTER, state.step), idx)
  k_craft, k_aug, k_adv = K.split_each(keys, 3)
  logits_fn = train.logits_fn(model, state)
  dropout = K.stream(jax.random.wrap_key_data(root), K.DROPOUT, state.step)
  if spec.release_em:   # craft on t(x), train on clip(t(x) + δ) with float16 δ, as the release
    view = release_view(spec, x_u8, k_aug)
    delta = N.craft(spec.craft, logits_fn, view, y, k_craft)
    noise = N.quantize(delta, spec.craft.int8_bound)
    x_in = clip_input(view + delta.astype(jnp.float16).astype(jnp.float32))
    new_state, metrics = train.adversarial_update(model, tx, state, x_in, y, k_adv, spec.attack,
                                                  dropout_key=dropout)
  else:
    noise = spec.craft.noise(logits_fn, x_u8, y, k_craft)
    new_state, metrics = surrogate_step(model, tx, state, x_u8, noise, y, k_aug, k_adv,
                                        attack=spec.attack, augment_pad=spec.augment_pad,
                                        crop_size=spec.crop_size, dropout_key=dropout)
  table = table.at[idx].set(noise)
  metrics["noise_abs_mean"] = jnp.mean(jnp.abs(noise.astype(jnp.float32)))
  return new_state, table, metrics


def final_step(model, spec: GenSpec, state, acc, root, batch):
  """Final-pass noise for a batch with the frozen final surrogate, written into the table.

  ``acc`` = {table: the int8 table, written: (N_pad,) int32 writes per row}; padded batch
  entries (valid False) repeat a real index and count nothing.
  """
  x_u8, y, idx = batch["x"], batch["y"], batch["idx"]
  keys = K.per_sample(K.stream(jax.random.wrap_key_data(root), K.FINAL), idx)
  if spec.release_em:   # the release regenerates the noise on one more augmented view
    k_view, keys = K.split_each(keys, 2)
    x = release_view(spec, x_u8, k_view)
  else:
    x = normalize(x_u8)
  delta = N.make_delta(spec.craft, train.logits_fn(model, state), x, y, keys)
  return {"table": acc["table"].at[idx].set(N.quantize(delta, spec.craft.int8_bound)),
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
