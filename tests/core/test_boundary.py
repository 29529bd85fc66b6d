"""The public core refuses the common mistakes of a notebook user, each with one line that names
the remedy, or computes the right thing (docs/library.md, "Mistakes the API refuses")."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sem_jax import core
from sem_jax.errors import SemJaxError


class Net(nn.Module):
  """A user's model: Conv -> Dense, no BatchNorm, no train argument."""
  classes: int = 4

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.classes)(nn.relu(nn.Conv(4, (3, 3))(x)).mean((1, 2)))


class BNNet(nn.Module):
  """A user's BatchNorm model whose switch is ``deterministic`` (True in eval)."""

  @nn.compact
  def __call__(self, x, deterministic: bool = True):
    h = nn.Conv(4, (3, 3))(x)
    h = nn.BatchNorm(use_running_average=deterministic, momentum=0.5)(h)
    return nn.Dense(4)(nn.relu(h).mean((1, 2)))


@pytest.fixture(scope="module")
def setup():
  model = Net()
  state = core.init_state(model, core.paper_sgd(0.1), jax.random.key(0), (8, 8, 3))
  x = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
  y = np.arange(6) % 4
  keys = core.per_sample(jax.random.key(1), np.arange(6))
  return model, state, core.logits_fn(model, state), x, y, keys


SPEC = core.sem(radius=8, steps=2, step_size=4, samples=2, adv_radius=4)


def test_float_images_to_noise_are_refused(setup):
  _, _, f, x, y, keys = setup
  with pytest.raises(SemJaxError, match=r"takes uint8 pixel levels.*\(x \* 255\)\.round\(\)"):
    SPEC.noise(f, x.astype(np.float32) / 255, y, keys)


def test_a_float_image_to_protect_is_refused_not_erased(setup):
  _, _, f, x, y, keys = setup
  noise = np.asarray(SPEC.noise(f, x, y, keys))
  with pytest.raises(SemJaxError, match="protect takes uint8 images"):
    core.protect(x.astype(np.float32) / 255, noise)
  with pytest.raises(SemJaxError, match="protect takes int8 noise"):
    core.protect(x, noise.astype(np.float32))
  out = core.protect(x, noise)
  assert out.dtype == np.uint8 and np.abs(out.astype(int) - x).max() <= 8
  assert np.abs(out.astype(int) - x).mean() > 1     # the photo is kept, the noise added


def test_uint8_images_to_the_fraction_form_are_refused(setup):
  _, _, f, x, y, keys = setup
  with pytest.raises(SemJaxError, match=r"takes normalised float images .*core\.normalize"):
    SPEC(f, x, y, keys)
  with pytest.raises(SemJaxError, match=r"got values in \[0, 1\]: pass core\.normalize"):
    SPEC(f, x.astype(np.float32) / 255, y, keys)
  with pytest.raises(SemJaxError, match="normalize takes uint8"):
    core.normalize(x.astype(np.float32) / 255)
  with pytest.raises(SemJaxError, match="takes normalised float images"):
    core.pgd(f, x, y, keys, radius=4)


@pytest.mark.parametrize("bad", [np.arange(6) % 8, np.arange(6) - 1])
def test_labels_out_of_range_are_refused_before_any_step(setup, bad):
  model, state, f, x, _, keys = setup
  with pytest.raises(SemJaxError, match=r"labels must lie in \[0, 4\)"):
    SPEC.noise(f, x, bad, keys)
  with pytest.raises(SemJaxError, match=r"labels must lie in \[0, 4\)"):
    core.update(model, core.paper_sgd(0.1), state, core.normalize(x), bad)
  with pytest.raises(SemJaxError, match=r"labels must have shape \(6,\)"):
    SPEC.noise(f, x, bad[:3], keys)
  with pytest.raises(SemJaxError, match="labels must be integer"):
    SPEC.noise(f, x, bad.astype(np.float32), keys)


def test_keys_of_the_wrong_shape_name_per_sample(setup):
  _, _, f, x, y, _ = setup
  for keys in (jax.random.key(1), jax.random.split(jax.random.key(1), 3),
               jax.random.split(jax.random.key(1), (6, 2))):
    with pytest.raises(SemJaxError, match=r"one key per image, shape \(6,\).*core\.per_sample"):
      SPEC.noise(f, x, y, keys)
  with pytest.raises(SemJaxError, match="expected PRNG keys"):
    SPEC.noise(f, x, y, np.zeros(6, np.int32))


def test_legacy_keys_work_everywhere_and_give_the_typed_keys_noise(setup):
  _, _, f, x, y, keys = setup
  legacy = core.per_sample(jax.random.PRNGKey(1), np.arange(6))
  np.testing.assert_array_equal(jax.random.key_data(legacy), jax.random.key_data(keys))
  as_data = jax.random.key_data(keys)             # (6, 2) uint32, as PRNGKey-style code has
  for spec in (SPEC, core.em(radius=8, steps=2, step_size=4, samples=1), core.random_baseline(8)):
    np.testing.assert_array_equal(spec.noise(f, x, y, as_data), spec.noise(f, x, y, keys))
  adv = core.pgd(f, core.normalize(x), y, as_data, radius=4, steps=2, step_size=2)
  np.testing.assert_array_equal(adv, core.pgd(f, core.normalize(x), y, keys, radius=4, steps=2,
                                               step_size=2))


def test_per_sample_refuses_labels_for_indices(setup):
  with pytest.raises(SemJaxError, match="indices repeat.*not its label"):
    core.per_sample(jax.random.key(1), np.array([0, 0, 1, 1]))
  with pytest.raises(SemJaxError, match="one root key"):
    core.per_sample(jax.random.split(jax.random.key(1), 2), np.arange(2))
  with pytest.raises(SemJaxError, match="dataset indices, integers of shape"):
    core.per_sample(jax.random.key(1), np.arange(4.0))


def test_images_with_one_label_get_different_noise_from_the_documented_keys(setup):
  """The README's keys come from indices: two images with the same label and the same pixels
  still get their own noise."""
  _, _, f, _, _, _ = setup
  x = np.full((4, 8, 8, 3), 128, np.uint8)
  y = np.array([0, 0, 1, 1])
  noise = np.asarray(core.random_baseline(8).noise(f, x, y, core.per_sample(jax.random.key(1),
                                                                            np.arange(4))))
  assert not np.array_equal(noise[0], noise[1]) and not np.array_equal(noise[2], noise[3])


@pytest.mark.slow
def test_a_model_with_an_undeclared_switch_is_refused_and_a_declared_one_trains():
  model, tx = BNNet(), core.paper_sgd(0.1, weight_decay=0.0)
  with pytest.raises(SemJaxError, match=r"takes deterministic besides its input.*mode="):
    core.init_state(model, tx, jax.random.key(0), (8, 8, 3))
  mode = lambda train: {"deterministic": not train}
  state = core.init_state(model, tx, jax.random.key(0), (8, 8, 3), mode=mode)
  x = core.normalize(np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
  new, _ = core.update(model, tx, state, x, np.arange(4), mode=mode)
  before = jax.tree_util.tree_leaves(state.batch_stats)
  after = jax.tree_util.tree_leaves(new.batch_stats)
  assert any(not np.allclose(a, b) for a, b in zip(before, after))   # trained in train mode
  with pytest.raises(SemJaxError, match="takes no argument 'train'"):
    core.logits_fn(model, new, mode="train")
  # eval mode reads the running statistics: logits do not depend on the rest of the batch
  f = core.logits_fn(model, new, mode=mode)
  np.testing.assert_allclose(f(x)[:1], f(x[:1]), atol=1e-5)


def test_our_models_declare_their_switch():
  for name in ("small_cnn", "resnet18", "resnet50", "se_resnet18", "mobilenet_v2", "vit", "cait"):
    assert core.mode_switch(core.create_model(name, 10))(True) == {"train": True}, name


def test_logits_fn_passes_gradients_to_the_parameters_only_when_asked(setup):
  model, state, _, x, y, _ = setup
  xn = core.normalize(x)
  loss = lambda p, frozen: core.logits_fn(model, state.replace(params=p), frozen=frozen)(xn).sum()
  g_frozen = jax.grad(lambda p: loss(p, True))(state.params)
  g_open = jax.grad(lambda p: loss(p, False))(state.params)
  assert all(float(jnp.abs(v).max()) == 0 for v in jax.tree_util.tree_leaves(g_frozen))
  assert any(float(jnp.abs(v).max()) > 0 for v in jax.tree_util.tree_leaves(g_open))


@pytest.mark.slow
def test_the_papers_outer_loop_runs_from_core_with_a_users_model():
  """Craft SEM noise for a batch, write it, train the surrogate with PGD-AT on the augmented
  protected batch: core.sem + core.surrogate_step, with a user's flax model."""
  model, tx = Net(), core.paper_sgd(0.1)
  state = core.init_state(model, tx, jax.random.key(0), (8, 8, 3))
  rng = np.random.default_rng(0)
  x, y = rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8), np.arange(8) % 4
  spec, table = core.sem(radius=8, steps=2, step_size=4, samples=2), np.zeros_like(x, np.int8)
  for step in range(3):
    keys = core.per_sample(jax.random.fold_in(jax.random.key(1), step), np.arange(8))
    k_craft, k_aug, k_adv = (jax.vmap(lambda k: jax.random.split(k, 3))(keys)).swapaxes(0, 1)
    noise = spec.noise(core.logits_fn(model, state), x, y, k_craft)
    table = np.asarray(noise)
    state, metrics = core.surrogate_step(model, tx, state, x, noise, y, k_aug, k_adv,
                                         attack=spec.adversary)
    assert np.isfinite(float(metrics["loss"]))
  assert int(state.step) == 3 and np.abs(table).max() == 8 and np.abs(table).mean() > 1
