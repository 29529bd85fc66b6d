"""What a small diffusion purifier (AVATAR-style: diffuse the published image to step t*, then
denoise it back with a DDPM trained on the published set) would cost on this machine.

Times, on MNIST-5k's shape (32 x 32 x 1, batch 128), the jitted training step of a small
ε-prediction DDPM (Ho et al. 2020: linear β from 1e-4 to 0.02 over T = 1000 steps, loss
E‖ε - ε_θ(√ᾱ_t x + √(1-ᾱ_t) ε, t)‖²) with a two-level U-Net (32 / 64 / 128 channels, sinusoidal
time embedding), and one reverse step of purification. Prints the parameter count, the
steps/s, and the extrapolated hours for a training budget and for purifying the training set.

  python tools/diffusion_cost.py [--steps 20000] [--t-star 100]
"""
from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

T = 1000


def time_embedding(t, dim: int):
  half = dim // 2
  freq = jnp.exp(-np.log(10000.0) * jnp.arange(half) / half)
  a = t[:, None].astype(jnp.float32) * freq[None]
  return jnp.concatenate([jnp.sin(a), jnp.cos(a)], -1)


class Block(nn.Module):
  ch: int

  @nn.compact
  def __call__(self, x, emb):
    h = nn.Conv(self.ch, (3, 3))(nn.silu(nn.GroupNorm(8)(x)))
    h = h + nn.Dense(self.ch)(emb)[:, None, None]
    h = nn.Conv(self.ch, (3, 3))(nn.silu(nn.GroupNorm(8)(h)))
    return h + (x if x.shape[-1] == self.ch else nn.Conv(self.ch, (1, 1))(x))


class UNet(nn.Module):
  """ε_θ(x_t, t): 32 -> 64 -> 128 channels down (two stride-2 levels), skip connections up."""

  @nn.compact
  def __call__(self, x, t):
    emb = nn.Dense(128)(nn.silu(nn.Dense(128)(time_embedding(t, 64))))
    h0 = Block(32)(nn.Conv(32, (3, 3))(x), emb)
    h1 = Block(64)(nn.Conv(64, (3, 3), (2, 2))(h0), emb)
    h2 = Block(128)(nn.Conv(128, (3, 3), (2, 2))(h1), emb)
    h2 = Block(128)(h2, emb)
    u1 = Block(64)(jnp.concatenate([jax.image.resize(h2, h1.shape[:3] + (128,), "nearest"), h1],
                                   -1), emb)
    u0 = Block(32)(jnp.concatenate([jax.image.resize(u1, h0.shape[:3] + (64,), "nearest"), h0],
                                   -1), emb)
    return nn.Conv(x.shape[-1], (3, 3))(nn.silu(nn.GroupNorm(8)(u0)))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=20000, help="training steps to extrapolate to")
  p.add_argument("--t-star", type=int, default=100, help="purification depth (reverse steps)")
  p.add_argument("--images", type=int, default=4000, help="training-set size to purify")
  a = p.parse_args()
  beta = jnp.linspace(1e-4, 0.02, T)
  abar = jnp.cumprod(1 - beta)
  net, tx = UNet(), optax.adam(2e-4)
  x = jax.random.uniform(jax.random.key(0), (128, 32, 32, 1)) * 2 - 1
  params = net.init(jax.random.key(1), x, jnp.zeros(128, jnp.int32))["params"]
  opt = tx.init(params)
  n_params = sum(v.size for v in jax.tree.leaves(params))

  @jax.jit
  def train_step(params, opt, x, key):
    kt, ke = jax.random.split(key)
    t = jax.random.randint(kt, (x.shape[0],), 0, T)
    eps = jax.random.normal(ke, x.shape)
    ab = abar[t][:, None, None, None]

    def loss(p):
      pred = net.apply({"params": p}, jnp.sqrt(ab) * x + jnp.sqrt(1 - ab) * eps, t)
      return jnp.mean((pred - eps) ** 2)

    value, g = jax.value_and_grad(loss)(params)
    upd, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, upd), opt, value

  @jax.jit
  def reverse_step(params, x, t, key):
    tt = jnp.full((x.shape[0],), t)
    eps = net.apply({"params": params}, x, tt)
    mean = (x - beta[t] / jnp.sqrt(1 - abar[t]) * eps) / jnp.sqrt(1 - beta[t])
    return mean + jnp.sqrt(beta[t]) * jax.random.normal(key, x.shape)

  def timed(fn, n):
    out = fn(0)
    jax.block_until_ready(out)
    start = time.perf_counter()
    for i in range(n):
      out = fn(i + 1)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / n

  state = [params, opt]

  def one_train(i):
    state[0], state[1], v = train_step(state[0], state[1], x, jax.random.key(i))
    return v

  per_train = timed(one_train, 10)
  per_rev = timed(lambda i: reverse_step(state[0], x, 50, jax.random.key(i)), 10)
  purify_s = per_rev * a.t_star * np.ceil(a.images / 128)
  print(f"DDPM U-Net: {n_params / 1e6:.2f} M parameters, batch 128 of 32x32x1, "
        f"{jax.devices()[0].device_kind}")
  print(f"train step {per_train * 1e3:.0f} ms ({1 / per_train:.2f} steps/s): {a.steps} steps = "
        f"{a.steps * per_train / 3600:.1f} h")
  print(f"reverse step {per_rev * 1e3:.0f} ms: purifying {a.images} images at t* = {a.t_star} "
        f"= {purify_s / 60:.1f} min")


if __name__ == "__main__":
  main()
