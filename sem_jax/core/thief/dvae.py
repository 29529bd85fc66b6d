"""D-VAE purification (Yu et al., "Purify unlearnable examples via rate-constrained variational
autoencoders", ICML 2024): a VAE trained on the published training set under a bound on its
rate (the KL term); the victim trains on its reconstructions.

A small perturbation costs rate to encode and buys little reconstruction, so under the bound
the VAE keeps the image and drops the noise. The model: two stride-2 3x3 convs (32, 64
channels, ReLU) to a 1/4-resolution latent map of ``latent`` channels (mean and log-variance),
two stride-2 transposed convs back to a linear output (a sigmoid there saturates at the black
background of digits and the decoder stops learning). The loss per image, in [0, 1] units:

  Σ_pixels (x̂ - x)² + λ max(0, KL - rate · units),   KL = ½ Σ (μ² + σ² - 1 - log σ²)

(``units``: latent elements per image, ``rate``: the bound in nats per unit, λ = 1).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

PENALTY = 1.0


class VAE(nn.Module):
  """(x in [0, 1], key) -> (reconstruction, unbounded, μ, log σ²); key None: x̂ from μ."""
  latent: int = 8

  @nn.compact
  def __call__(self, x, key=None):
    h, w, c = x.shape[1:]
    e = nn.relu(nn.Conv(32, (3, 3), (2, 2), padding=1)(x))
    e = nn.relu(nn.Conv(64, (3, 3), (2, 2), padding=1)(e))
    stats = nn.Conv(2 * self.latent, (3, 3), padding=1)(e)
    mu, logvar = jnp.split(stats, 2, axis=-1)
    z = mu if key is None else mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
    d = nn.relu(nn.ConvTranspose(64, (3, 3), padding="SAME")(z))
    d = nn.relu(nn.ConvTranspose(32, (4, 4), (2, 2), padding="SAME")(d))
    d = nn.ConvTranspose(c, (4, 4), (2, 2), padding="SAME")(d)
    return d[:, :h, :w], mu, logvar


def kl(mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(μ, σ²) || N(0, 1)) summed over all but the first axis: ½ Σ (μ² + σ² - 1 - log σ²)."""
  axes = tuple(range(1, mu.ndim))
  return 0.5 * jnp.sum(mu ** 2 + jnp.exp(logvar) - 1.0 - logvar, axis=axes)


def loss(params, model: VAE, x, key, rate: float):
  """Mean over the batch of the rate-constrained objective (module docstring); x in [0, 1]."""
  xh, mu, logvar = model.apply({"params": params}, x, key)
  recon = jnp.sum((xh - x) ** 2, axis=(1, 2, 3))
  units = mu[0].size
  return jnp.mean(recon + PENALTY * jnp.maximum(0.0, kl(mu, logvar) - rate * units))


@functools.partial(jax.jit, static_argnums=(0, 1))
def train_step(model: VAE, tx, params, opt_state, x, key, rate):
  """One Adam step on [`loss`][loss]; returns (params, opt_state, loss)."""
  value, grads = jax.value_and_grad(loss)(params, model, x, key, rate)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, value


@functools.partial(jax.jit, static_argnums=(0,))
def reconstruct(model: VAE, params, x):
  """Deterministic reconstructions (from μ) of x in [0, 1], clipped to [0, 1]."""
  return jnp.clip(model.apply({"params": params}, x)[0], 0.0, 1.0)
