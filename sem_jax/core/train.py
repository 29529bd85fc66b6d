"""Surrogate (and victim) training: state pytree, optimizer, one pure update step.

Any flax module ``model(x) -> logits`` works. A model whose ``__call__`` takes ``train`` gets
``train=True`` in the update (BatchNorm on batch statistics, its running statistics updated,
dropout on) and ``train=False`` everywhere else; a model with a ``batch_stats`` collection
has it carried in :class:`TrainState`, one without has ``batch_stats = {}``. The adversary
of adversarial training attacks the eval-mode model (docs/method.md, "The surrogate
adversary").
"""
from __future__ import annotations

import inspect
from typing import Any

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from sem_jax.core import attacks


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a pytree.

  Attributes:
    step: int32 scalar, number of updates applied.
    params: the flax parameters; batch_stats: BatchNorm running statistics ({} if none).
    opt_state: optax state.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def sgd(learning_rate: float = 0.1, momentum: float = 0.9, weight_decay: float = 5e-4,
        decay_every: int = 2000, decay_factor: float = 0.1) -> optax.GradientTransformation:
  """SGD with momentum and coupled weight decay (PyTorch semantics), step-decayed lr: the
  paper's surrogate and victim optimizer.

  lr(step) = learning_rate * decay_factor ** (step // decay_every).
  """
  schedule = optax.exponential_decay(learning_rate, decay_every, decay_factor, staircase=True)
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(schedule, momentum=momentum))


def adam(learning_rate: float = 1e-3, weight_decay: float = 0.0, decay_every: int = 2000,
         decay_factor: float = 0.1) -> optax.GradientTransformation:
  """Adam (β 0.9, 0.999, ε 1e-8) with coupled weight decay (PyTorch's ``Adam(weight_decay=)``)
  and the step-decayed rate of :func:`sgd`: APBench's optimizer for its transformers."""
  schedule = optax.exponential_decay(learning_rate, decay_every, decay_factor, staircase=True)
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(schedule, eps=1e-8))


def _mode(model: nn.Module, train: bool) -> dict:
  """``{"train": train}`` for a model whose __call__ takes ``train``, else nothing."""
  return {"train": train} if "train" in inspect.signature(model.__call__).parameters else {}


def variables(state: TrainState) -> dict:
  """The flax variables of a state: params, and batch_stats when the model has them."""
  out = {"params": state.params}
  if state.batch_stats:
    out["batch_stats"] = state.batch_stats
  return out


def init_state(model: nn.Module, tx: optax.GradientTransformation, key: jax.Array,
               image_shape) -> TrainState:
  """Initialise variables on a dummy batch of shape (1, *image_shape)."""
  variables_ = model.init(key, jnp.zeros((1, *image_shape), jnp.float32), **_mode(model, False))
  params = variables_["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables_.get("batch_stats", {}), opt_state=tx.init(params))


def logits_fn(model: nn.Module, state: TrainState):
  """x -> eval-mode logits (running BatchNorm statistics), parameters frozen: what the
  defensive noise and the adversary see."""
  frozen = jax.lax.stop_gradient(variables(state))
  return lambda x: model.apply(frozen, x, **_mode(model, False))


def _train_logits(model: nn.Module, params, batch_stats, x: jax.Array, dropout_key):
  """Train-mode logits of x and the updated BatchNorm running statistics ({} if none)."""
  has_stats = bool(batch_stats)
  out = model.apply({"params": params, **({"batch_stats": batch_stats} if has_stats else {})},
                    x, **_mode(model, True), mutable=["batch_stats"] if has_stats else False,
                    rngs={} if dropout_key is None else {"dropout": dropout_key})
  logits, new_vars = out if has_stats else (out, {})
  return logits, new_vars.get("batch_stats", {})


def _descend(tx, state: TrainState, loss_fn, y):
  """One optimizer step on ``loss_fn(params) -> (loss, (logits, batch_stats))``; returns
  (state, {"loss", "accuracy" of the logits against y})."""
  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  acc = jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))
  return (TrainState(state.step + 1, params, batch_stats, opt_state),
          {"loss": loss, "accuracy": acc})


def update(model: nn.Module, tx: optax.GradientTransformation, state: TrainState, x: jax.Array,
           y: jax.Array, y2: jax.Array | None = None, lam: jax.Array | float = 1.0,
           dropout_key: jax.Array | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on mean [λ CE(f(x), y) + (1-λ) CE(f(x), y2)] with the model in train mode.

  Args:
    x: (B, H, W, C) normalised inputs (already augmented / attacked).
    y: (B,) labels; y2, lam: the mixup / cutmix partner labels and weight (None: plain CE).
    dropout_key: the key of this step's dropout masks (models with dropout need one).
  Returns:
    (new state, {"loss": mean CE, "accuracy": batch accuracy against y}) on these inputs.
  """
  chex.assert_rank(x, 4)
  chex.assert_shape(y, (x.shape[0],))

  def loss_fn(params):
    logits, stats = _train_logits(model, params, state.batch_stats, x, dropout_key)
    loss = attacks.ce(logits, y).mean()
    if y2 is not None:
      loss = lam * loss + (1 - lam) * attacks.ce(logits, y2).mean()
    return loss, (logits, stats)

  return _descend(tx, state, loss_fn, y)


def update_max_over_views(model: nn.Module, tx: optax.GradientTransformation, state: TrainState,
                          views: list, y: jax.Array, dropout_key: jax.Array | None = None):
  """One step on mean_b max_k CE(f(views[k]_b), y_b): each view a train-mode pass (the
  BatchNorm running statistics updated once per view, in order), the gradient through each
  sample's worst view (UEraser's adversarial augmentation). Returns (state, metrics); the
  accuracy is the last view's."""

  def loss_fn(params):
    stats, losses, logits = state.batch_stats, [], None
    for k, x in enumerate(views):
      key = None if dropout_key is None else jax.random.fold_in(dropout_key, k)
      logits, stats = _train_logits(model, params, stats, x, key)
      losses.append(attacks.ce(logits, y))
    return jnp.max(jnp.stack(losses), axis=0).mean(), (logits, stats)

  return _descend(tx, state, loss_fn, y)


def adversarial_inputs(model, state, x, y, keys, spec: attacks.AttackSpec):
  """PGD-AT inputs: PGD against the eval-mode model (an inactive spec: x unchanged)."""
  if not spec.active:
    return x
  return spec(logits_fn(model, state), x, y, keys)


def predict(model: nn.Module, state: TrainState, x: jax.Array) -> jax.Array:
  """Eval-mode logits (B, classes)."""
  return model.apply(variables(state), x, **_mode(model, False))
