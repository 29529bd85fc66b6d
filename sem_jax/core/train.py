"""Surrogate (and victim) training: state pytree, optimizer, one pure update step.

Any flax module ``model(x) -> logits`` works. Its train / eval switch is explicit, never guessed
from a parameter name ([`mode_switch`][mode_switch]): the ``mode`` argument of these functions (the
name of a boolean argument that is True in training, ``"train"``; or a callable
``train -> kwargs`` such as ``lambda t: {"deterministic": not t}``; or ``False`` for none), else
the model's declared class attribute ``train_flag``; a model whose ``__call__`` takes nothing
but x needs neither. In training the switch is on (BatchNorm on batch statistics, its running
statistics updated, dropout on), everywhere else off. A model with a ``batch_stats``
collection has it carried in [`TrainState`][TrainState], one without has ``batch_stats = {}``. The adversary
of adversarial training attacks the eval-mode model (docs/method.md, "The surrogate
adversary").
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Union

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from sem_jax.core import attacks, checks
from sem_jax.errors import SemJaxError


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a pytree.

  Attributes:
    step: int32 scalar, number of updates applied.
    params: the flax parameters; batch_stats: BatchNorm running statistics ({} if none).
    opt_state: optax state.

  Example:
    >>> import jax
    >>> from sem_jax import core
    >>> state = core.init_state(core.create_model("small_cnn", 10, 8), core.paper_sgd(0.1),
    ...                         jax.random.key(0), (16, 16, 1))
    >>> int(state.step), bool(state.batch_stats)        # SmallCNN has BatchNorm
    (0, True)
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def paper_sgd(learning_rate: float = 0.1, momentum: float = 0.9, weight_decay: float = 5e-4,
        decay_every: int = 2000, decay_factor: float = 0.1) -> optax.GradientTransformation:
  """SGD with momentum and coupled weight decay (PyTorch semantics), step-decayed lr: the
  paper's surrogate and victim optimizer.

  lr(step) = learning_rate * decay_factor ** (step // decay_every).

  Example:
    >>> import jax.numpy as jnp
    >>> from sem_jax import core
    >>> tx = core.paper_sgd(learning_rate=0.1, weight_decay=0.0)
    >>> p = {"w": jnp.ones(1)}
    >>> update = tx.update(p, tx.init(p), p)[0]
    >>> round(float(update["w"].sum()), 6)    # -lr * gradient
    -0.1
  """
  schedule = optax.exponential_decay(learning_rate, decay_every, decay_factor, staircase=True)
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(schedule, momentum=momentum))


def adam(learning_rate: float = 1e-3, weight_decay: float = 0.0, decay_every: int = 2000,
         decay_factor: float = 0.1) -> optax.GradientTransformation:
  """Adam (β 0.9, 0.999, ε 1e-8) with coupled weight decay (PyTorch's ``Adam(weight_decay=)``)
  and the step-decayed rate of [`paper_sgd`][paper_sgd]: APBench's optimizer for its transformers."""
  schedule = optax.exponential_decay(learning_rate, decay_every, decay_factor, staircase=True)
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(schedule, eps=1e-8))


Mode = Union[str, Callable[[bool], dict], bool, None]


def mode_switch(model: nn.Module, mode: Mode = None) -> Callable[[bool], dict]:
  """The model's train / eval switch as ``train -> kwargs of model.apply``.

  Args:
    model: a flax module.
    mode: ``"name"``: the boolean argument ``name`` is True in training; a callable
      ``train -> dict`` (e.g. ``lambda t: {"deterministic": not t}``); ``False``: the model has
      no switch; ``None``: the model's class attribute ``train_flag`` (a name, or None for
      no switch), else no switch when ``__call__`` takes nothing but the input.

  Raises:
    SemJaxError: the model's ``__call__`` takes more than its input and neither ``mode`` nor
      ``train_flag`` says which argument switches training.

  Example:
    >>> import flax.linen as nn
    >>> from sem_jax import core
    >>> class Net(nn.Module):
    ...   @nn.compact
    ...   def __call__(self, x, deterministic: bool = True):
    ...     return nn.Dropout(0.5, deterministic=deterministic)(nn.Dense(3)(x))
    >>> core.mode_switch(Net(), lambda t: {"deterministic": not t})(True)
    {'deterministic': False}
  """
  if mode is None:
    mode = getattr(type(model), "train_flag", _UNDECLARED)
    if mode is _UNDECLARED:
      extra = [p for p in list(inspect.signature(model.__call__).parameters)[1:]]
      if extra:
        raise SemJaxError(
            f"{type(model).__name__}.__call__ takes {', '.join(extra)} besides its input: say "
            "which switches training with mode='train' (True in training), mode=lambda t: "
            "{'deterministic': not t}, or mode=False for none; or declare the class attribute "
            "train_flag = 'train'")
      mode = False
  if mode is None or mode is False:
    return lambda train: {}
  if isinstance(mode, str):
    params = inspect.signature(model.__call__).parameters
    if mode not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
      raise SemJaxError(f"mode={mode!r}: {type(model).__name__}.__call__ takes no argument "
                        f"{mode!r} (it takes {', '.join(params)})")
    return lambda train: {mode: train}
  if callable(mode):
    return mode
  raise SemJaxError(f"mode must be an argument name, a callable train -> kwargs or False, got "
                    f"{mode!r}")


_UNDECLARED = object()


def variables(state: TrainState) -> dict:
  """The flax variables of a state: params, and batch_stats when the model has them."""
  out = {"params": state.params}
  if state.batch_stats:
    out["batch_stats"] = state.batch_stats
  return out


def init_state(model: nn.Module, tx: optax.GradientTransformation, key: jax.Array,
               image_shape, mode: Mode = None) -> TrainState:
  """Initialise variables on a dummy batch of shape (1, *image_shape) (eval mode).

  Example:
    >>> import jax
    >>> from sem_jax import core
    >>> model = core.create_model("small_cnn", 10, 8)
    >>> state = core.init_state(model, core.paper_sgd(0.1), jax.random.key(0), (16, 16, 1))
    >>> int(state.step)
    0
  """
  if len(tuple(image_shape)) != 3:
    raise SemJaxError(f"init_state takes one image's shape (H, W, C), got {tuple(image_shape)}")
  variables_ = model.init(key, jnp.zeros((1, *image_shape), jnp.float32),
                          **mode_switch(model, mode)(False))
  params = variables_["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables_.get("batch_stats", {}), opt_state=tx.init(params))


def logits_fn(model: nn.Module, state: TrainState, mode: Mode = None, frozen: bool = True):
  """x -> eval-mode logits (running BatchNorm statistics): what the defensive noise and the
  adversary see.

  With ``frozen`` (the default) no gradient reaches ``state``'s parameters; ``frozen=False``
  keeps that path, for a user who differentiates through the state (e.g. a bilevel outer
  loss: ``jax.grad(lambda p: loss(core.logits_fn(model, state.replace(params=p),
  frozen=False)(x)))(state.params)``).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from sem_jax import core
    >>> model = core.create_model("small_cnn", 10, 8)
    >>> state = core.init_state(model, core.paper_sgd(0.1), jax.random.key(0), (16, 16, 1))
    >>> core.logits_fn(model, state)(jnp.zeros((2, 16, 16, 1))).shape
    (2, 10)
  """
  vars_ = variables(state)
  if frozen:
    vars_ = jax.lax.stop_gradient(vars_)
  kwargs = mode_switch(model, mode)(False)
  return lambda x: model.apply(vars_, x, **kwargs)


def _train_logits(model: nn.Module, params, batch_stats, x: jax.Array, dropout_key,
                  mode: Mode = None):
  """Train-mode logits of x and the updated BatchNorm running statistics ({} if none)."""
  has_stats = bool(batch_stats)
  out = model.apply({"params": params, **({"batch_stats": batch_stats} if has_stats else {})},
                    x, **mode_switch(model, mode)(True), mutable=["batch_stats"] if has_stats else False,
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
           dropout_key: jax.Array | None = None, mode: Mode = None,
           loss: attacks.LossFn | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on mean [λ L(f(x), y) + (1-λ) L(f(x), y2)] with the model in train mode.

  Args:
    model: the flax module.
    tx: the optax transformation of ``state``.
    state: the [`TrainState`][sem_jax.core.train.TrainState].
    x: (B, H, W, C) normalised inputs in [-0.5, 0.5] (already augmented / attacked).
    y: (B,) labels in [0, classes) (checked when concrete); y2, lam: the mixup / cutmix
      partner labels and weight (None: one label per image).
    dropout_key: the key of this step's dropout masks (models with dropout need one).
    mode: the model's train / eval switch ([`mode_switch`][mode_switch]).
    loss: (logits, labels) -> per-sample loss L; default cross-entropy.

  Returns:
    (new state, {"loss": mean loss, "accuracy": batch accuracy against y}) on these inputs.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from sem_jax import core
    >>> model, tx = core.create_model("small_cnn", 4, 8), core.paper_sgd(0.1)
    >>> state = core.init_state(model, tx, jax.random.key(0), (8, 8, 1))
    >>> state, m = core.update(model, tx, state, jnp.zeros((2, 8, 8, 1)), jnp.array([0, 3]))
    >>> int(state.step), bool(jnp.isfinite(m["loss"]))
    (1, True)
  """
  checks.normalised_images(x, "update", check_range=False)   # defenses may standardise x
  classes = None
  if checks.concrete(y):
    classes = jax.eval_shape(lambda v: predict(model, state, v, mode), x[:1]).shape[-1]
  checks.labels(y, x.shape[0], classes, "update")
  per_sample_loss = loss or attacks.ce

  def loss_fn(params):
    logits, stats = _train_logits(model, params, state.batch_stats, x, dropout_key, mode)
    loss = per_sample_loss(logits, y).mean()
    if y2 is not None:
      loss = lam * loss + (1 - lam) * per_sample_loss(logits, y2).mean()
    return loss, (logits, stats)

  return _descend(tx, state, loss_fn, y)


def update_max_over_views(model: nn.Module, tx: optax.GradientTransformation, state: TrainState,
                          views: list, y: jax.Array, dropout_key: jax.Array | None = None,
                          mode: Mode = None):
  """One step on mean_b max_k CE(f(views[k]_b), y_b): each view a train-mode pass (the
  BatchNorm running statistics updated once per view, in order), the gradient through each
  sample's worst view (UEraser's adversarial augmentation). Returns (state, metrics); the
  accuracy is the last view's."""

  def loss_fn(params):
    stats, losses, logits = state.batch_stats, [], None
    for k, x in enumerate(views):
      key = None if dropout_key is None else jax.random.fold_in(dropout_key, k)
      logits, stats = _train_logits(model, params, stats, x, key, mode)
      losses.append(attacks.ce(logits, y))
    return jnp.max(jnp.stack(losses), axis=0).mean(), (logits, stats)

  return _descend(tx, state, loss_fn, y)


def adversarial_inputs(model, state, x, y, keys, spec: attacks.AttackSpec, mode: Mode = None):
  """PGD-AT inputs: PGD against the eval-mode model (an inactive spec: x unchanged)."""
  if not spec.active:
    return x
  return spec(logits_fn(model, state, mode), x, y, keys)


def adversarial_update(model, tx, state, x, y, keys, spec: attacks.AttackSpec, *,
                       dropout_key=None, mode: Mode = None):
  """One PGD-AT step: [`update`][sem_jax.core.train.update] on [`adversarial_inputs`][sem_jax.core.train.adversarial_inputs] (the plain step when the
  spec is inactive). Returns (state, metrics)."""
  x = adversarial_inputs(model, state, x, y, keys, spec, mode)
  return update(model, tx, state, x, y, dropout_key=dropout_key, mode=mode)


def predict(model: nn.Module, state: TrainState, x: jax.Array, mode: Mode = None) -> jax.Array:
  """Eval-mode logits (B, classes) of normalised images x.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from sem_jax import core
    >>> model = core.create_model("small_cnn", 10, 8)
    >>> state = core.init_state(model, core.paper_sgd(0.1), jax.random.key(0), (16, 16, 1))
    >>> core.predict(model, state, jnp.zeros((3, 16, 16, 1))).shape
    (3, 10)
  """
  return model.apply(variables(state), x, **mode_switch(model, mode)(False))
