"""Surrogate (and victim) training: state pytree, optimizer, one pure update step.

The update uses BatchNorm in train mode (batch statistics, running statistics
updated); the PGD adversary of adversarial training attacks the model with
running statistics (SPEC section 3).
"""
from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from sem_jax import attacks


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a pytree.

  Attributes:
    step: int32 scalar, number of updates applied.
    params, batch_stats: the flax variables.
    opt_state: optax state.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def make_optimizer(cfg) -> optax.GradientTransformation:
  """SGD with momentum and coupled weight decay (PyTorch semantics), step-decayed lr.

  lr(step) = learning_rate * lr_decay_factor ** (step // lr_decay_every).
  """
  schedule = optax.exponential_decay(cfg.learning_rate, cfg.lr_decay_every, cfg.lr_decay_factor,
                                     staircase=True)
  return optax.chain(optax.add_decayed_weights(cfg.weight_decay),
                     optax.sgd(schedule, momentum=cfg.momentum))


def init_state(model: nn.Module, tx: optax.GradientTransformation, key: jax.Array,
               image_shape) -> TrainState:
  """Initialise variables on a dummy batch of shape (1, *image_shape)."""
  variables = model.init(key, jnp.zeros((1, *image_shape), jnp.float32), train=False)
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))


def eval_logits_fn(model: nn.Module, state: TrainState):
  """x -> logits with running BatchNorm statistics, parameters frozen."""
  variables = {"params": jax.lax.stop_gradient(state.params),
               "batch_stats": jax.lax.stop_gradient(state.batch_stats)}
  return lambda x: model.apply(variables, x, train=False)


def update(model: nn.Module, tx: optax.GradientTransformation, state: TrainState, x: jax.Array,
           y: jax.Array, y2: jax.Array | None = None, lam: jax.Array | float = 1.0,
           dropout_key: jax.Array | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on mean [λ CE(f(x), y) + (1-λ) CE(f(x), y2)] with BatchNorm in train mode.

  Args:
    x: (B, H, W, C) normalised inputs (already augmented / attacked).
    y: (B,) labels; y2, lam: the mixup / cutmix partner labels and weight (None: plain CE).
    dropout_key: the key of this step's dropout masks (models with dropout need one).
  Returns:
    (new state, {"loss": mean CE, "accuracy": batch accuracy against y}) on these inputs.
  """
  def loss_fn(params):
    logits, new_vars = model.apply({"params": params, "batch_stats": state.batch_stats}, x,
                                   train=True, mutable=["batch_stats"],
                                   rngs={} if dropout_key is None else {"dropout": dropout_key})
    loss = attacks.ce(logits, y).mean()
    if y2 is not None:
      loss = lam * loss + (1 - lam) * attacks.ce(logits, y2).mean()
    return loss, (logits, new_vars.get("batch_stats", {}))

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  acc = jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))
  return (TrainState(state.step + 1, params, batch_stats, opt_state),
          {"loss": loss, "accuracy": acc})


def adversarial_inputs(model, state, x, y, keys, spec: attacks.AttackSpec):
  """PGD-AT inputs: PGD against the eval-mode model (an inactive spec: x unchanged)."""
  if not spec.active:
    return x
  return attacks.attack(eval_logits_fn(model, state), x, y, keys, spec)


def predict(model: nn.Module, state: TrainState, x: jax.Array) -> jax.Array:
  """Eval-mode logits (B, classes)."""
  return model.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)
