"""Data loading and validation; model shapes (ResNet-18 only as a shape test on CPU)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax.augment import augment
from sem_jax.data import make_dataset, protect
from sem_jax.datasets import load_mnist5k
from sem_jax.errors import SemJaxError
from sem_jax import keys as K
from sem_jax.models import create_model


def test_mnist5k_split_is_fixed_stratified_and_padded():
  a, b = load_mnist5k(), load_mnist5k()
  assert a.train_images.shape == (4000, 32, 32, 1) and a.test_images.shape == (1000, 32, 32, 1)
  assert a.train_images.dtype == np.uint8 and a.num_classes == 10
  np.testing.assert_array_equal(a.train_labels, b.train_labels)
  assert (np.bincount(a.train_labels) == 400).all() and (np.bincount(a.test_labels) == 100).all()
  assert a.train_images[:, :2].max() == 0 and a.train_images[:, :, -2:].max() == 0  # padding
  assert a.train_images.max() == 255
  # train and test are disjoint digits
  tr = {x.tobytes() for x in a.train_images}
  assert sum(x.tobytes() in tr for x in a.test_images) < 5


def test_float_images_must_be_integral_levels():
  y = np.array([0, 1])
  with pytest.raises(SemJaxError, match="fractional"):
    make_dataset("t", np.full((2, 4, 4, 1), 0.5), y, np.zeros((2, 4, 4, 1)), y)
  with pytest.raises(SemJaxError, match="outside"):
    make_dataset("t", np.full((2, 4, 4, 1), 256.0), y, np.zeros((2, 4, 4, 1)), y)
  ds = make_dataset("t", np.full((2, 4, 4), 7.0), y, np.zeros((2, 4, 4, 1)), y)
  assert ds.train_images.dtype == np.uint8 and ds.train_images.shape == (2, 4, 4, 1)


def test_protect_is_clipped_uint8_addition():
  x = np.array([0, 5, 250, 255], np.uint8)
  n = np.array([-8, -8, 8, 8], np.int8)
  np.testing.assert_array_equal(protect(x, n), [0, 0, 255, 255])
  # chunked over rows: equal to the whole-table int16 formula, every row written
  rng = np.random.default_rng(0)
  xs = rng.integers(0, 256, (37, 3, 2), dtype=np.uint8)
  ns = rng.integers(-8, 9, (37, 3, 2)).astype(np.int8)
  want = np.clip(xs.astype(int) + ns, 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(protect(xs, ns, chunk=5), want)
  with pytest.raises(ValueError, match="noise shape"):
    protect(xs, ns[:3])


def test_augment_is_flip_then_zero_padded_crop():
  x = jnp.arange(2 * 6 * 6 * 1, dtype=jnp.float32).reshape(2, 6, 6, 1) / 100 - 0.3
  keys = K.per_sample(jax.random.key(0), jnp.arange(2))
  out = np.asarray(augment(x, keys, 2))
  from sem_jax.augment import augment_params
  for i in range(2):
    flip, dy, dx = (int(v) for v in augment_params(keys[i], 2))
    v = np.asarray(x[i])[:, ::-1] if flip else np.asarray(x[i])
    p = np.pad(v, ((2, 2), (2, 2), (0, 0)), constant_values=-0.5)
    np.testing.assert_array_equal(out[i], p[dy:dy + 6, dx:dx + 6])
  # per-sample keys: a sample's augmentation does not depend on its batch
  solo = np.asarray(augment(x[1:], keys[1:], 2))
  np.testing.assert_array_equal(out[1:], solo)


@pytest.mark.parametrize("name,shape,classes", [("small_cnn", (32, 32, 1), 10),
                                                ("small_cnn", (24, 24, 3), 7),
                                                ("resnet18", (32, 32, 3), 100),
                                                ("linear", (8, 8, 2), 3)])
def test_model_shapes(name, shape, classes):
  m = create_model(name, classes)
  v = jax.eval_shape(lambda: m.init(jax.random.key(0), jnp.zeros((1, *shape)), train=False))
  out = jax.eval_shape(lambda v: m.apply(v, jnp.zeros((2, *shape)), train=False), v)
  assert out.shape == (2, classes)
  if name == "resnet18":
    n = sum(np.prod(p.shape) for p in jax.tree.leaves(v["params"]))
    assert 11.1e6 < n < 11.3e6  # the CIFAR ResNet-18 has ~11.2M parameters


def test_resnet18_one_training_step_is_finite():
  from sem_jax import train
  from sem_jax.config import GenerateConfig
  m = create_model("resnet18", 10)
  tx = train.make_optimizer(GenerateConfig())
  st = train.init_state(m, tx, jax.random.key(0), (32, 32, 3))
  x = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3), minval=-0.5, maxval=0.5)
  st2, metrics = jax.jit(lambda s: train.update(m, tx, s, x, jnp.arange(4)))(st)
  assert np.isfinite(float(metrics["loss"])) and int(st2.step) == 1
  assert not np.allclose(st2.batch_stats["BatchNorm_0"]["mean"], st.batch_stats["BatchNorm_0"]["mean"])
