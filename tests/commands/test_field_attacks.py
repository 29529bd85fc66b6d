"""``generate --config.method=X`` for the field's other attacks, end to end: artifacts, budget
and verify, determinism (dc's after a stop and resume), hypo against a fixed model, SVHN under TFDS mock
data, and on MNIST-5k a victim far below the clean one."""
import os

import jax
import numpy as np
import pytest

from conftest import tiny_config, tiny_eval_config
from sem_jax.commands.evaluate import evaluate_noise
from sem_jax.commands.generate import generate_noise
from sem_jax.commands.verify import verify
from sem_jax.errors import SemJaxError
from sem_jax.run.artifacts import load_noise

OPTIONS = {"lsp": dict(noise_radius=6.0, lsp_patch=4), "ar": dict(noise_radius=255.0),
           "ops": {}, "cuda": dict(cuda_blur=0.3),
           "ntga": dict(noise_steps=3, noise_step_size=2.0, ntga_block=20, ntga_targets=16),
           "dc": dict(train_steps=4, checkpoint_every=2, dc_generator_lr=0.05, model="linear",
                     model_width=0),
           "gue": dict(train_steps=4, checkpoint_every=2, dc_generator_lr=5.0, model="linear",
                      model_width=0, learning_rate=0.01, momentum=0.0, gue_inner_steps=2,
                      gue_inner_lr=0.05)}


def _generate(npz, wd, method, quiet, devices, **changes):
  cfg = tiny_config(npz, method=method, **{**OPTIONS[method], **changes})
  return generate_noise(cfg, wd, log=quiet, devices=devices)


@pytest.mark.parametrize("method", sorted(OPTIONS))
def test_field_attack_writes_verified_seeded_noise(method, npz_path, tmp_path, quiet, one_device):
  m = _generate(npz_path, str(tmp_path / "a"), method, quiet, one_device)
  assert m["method"] == method and m["final_pass_regenerated"] == 52
  assert m["budget"]["norm"] == {"lsp": "l2", "ar": "l2", "ops": "l0",
                                 "cuda": "conv"}.get(method, "linf")
  checks = verify(str(tmp_path / "a"))
  assert all(ok for ok, _ in checks), checks
  assert any("budget" in msg or "max |noise|" in msg for _, msg in checks)
  if method in ("dc", "gue"):   # the same run stopped after step 2 and resumed: bit-identical
    assert _generate(npz_path, str(tmp_path / "b"), method, quiet, one_device,
                     stop_after_step=2) is None
  again = _generate(npz_path, str(tmp_path / "b"), method, quiet, one_device)
  assert again["noise_sha256"] == m["noise_sha256"]          # same config and seed
  other = _generate(npz_path, str(tmp_path / "c"), method, quiet, one_device, seed=1)
  if method != "ops":   # ops is a deterministic search: no draw to reseed
    assert other["noise_sha256"] != m["noise_sha256"]
  noise = load_noise(str(tmp_path / "a" / "noise.npy"), dtype=m["noise_dtype"])
  labels = np.load(npz_path)["y_train"]
  if method == "ops":    # class-wise: one pixel and colour per class
    for k in range(4):
      moved = np.argwhere((noise[labels == k] != 0).any(-1))[:, 1:]
      assert len(np.unique(moved, axis=0)) <= 1
  if method in ("dc", "gue"):   # the generator moved: the noise is not all zero
    assert np.abs(noise.astype(int)).max() >= 1
  if method == "cuda":   # every image its class filter's blur of the clean one, rescaled
    from sem_jax.core.poisons import cuda
    x = np.load(npz_path)["x_train"]
    assert m["noise_dtype"] == "int16" and len(m["budget"]["filters"]) == 4
    assert np.array_equal(x + noise, cuda.publish(x, labels, np.array(m["budget"]["filters"])))
    assert np.abs(noise.astype(int)).max() > 8
    # exported as PNGs and imported back as cuda of the same seed: the same table, verified;
    # another seed's filters (another private key) do not explain the images
    from sem_jax.commands.export import export
    from sem_jax.commands.import_noise import import_noise
    cfg = tiny_config(npz_path, method="cuda")
    export(str(tmp_path / "a"), "png-flat", str(tmp_path / "png"), log=quiet)
    back = import_noise(cfg, str(tmp_path / "png"), str(tmp_path / "in"), log=quiet)
    assert back["budget"] == m["budget"] and back["noise_sha256"] == m["noise_sha256"]
    assert all(ok for ok, _ in verify(str(tmp_path / "in")))
    with pytest.raises(SemJaxError, match="outside cuda's budget"):
      import_noise(cfg.replace(seed=1), str(tmp_path / "png"), str(tmp_path / "in1"), log=quiet)
  if method == "lsp":    # each image constant on its 4x4 patches
    cells = noise.reshape(52, 4, 4, 4, 4, 1)
    assert (cells == cells[:, :, :1, :, :1]).all()


def test_verify_fails_noise_outside_its_declared_budget(npz_path, tmp_path, quiet, one_device):
  wd = str(tmp_path / "ops")
  _generate(npz_path, wd, "ops", quiet, one_device)
  noise = load_noise(os.path.join(wd, "noise.npy"), dtype="int16")
  noise[3, 0, 0, 0] = noise[3, 0, 0, 0] + 1 if noise[3, 0, 0, 0] < 200 else 5   # a 2nd pixel
  noise[3, 5, 5, 0] = 7
  np.save(os.path.join(wd, "noise.npy"), noise)
  failed = [msg for ok, msg in verify(wd) if not ok]
  assert any("OUTSIDE" in msg and "budget" in msg for msg in failed), failed


def test_hypo_descends_against_the_fixed_clean_victim(npz_path, tmp_path, quiet, one_device):
  clean = str(tmp_path / "clean")
  evaluate_noise(tiny_eval_config(npz_path, train_steps=20), None, clean, log=quiet,
                 devices=one_device)
  cfg = tiny_config(npz_path, method="hypo", tap_model=clean, noise_steps=5,
                    noise_step_size=2.0, num_samples=1, augment=False,
                    project_to_valid_range=True)
  m = generate_noise(cfg, str(tmp_path / "hypo"), log=quiet, devices=one_device)
  assert m["noise_max_abs"] <= 8 and m["final_pass_regenerated"] == 52
  assert all(ok for ok, _ in verify(str(tmp_path / "hypo")))
  with pytest.raises(SemJaxError, match="needs tap_model"):
    cfg.replace(tap_model="").validate()


def test_svhn_under_tfds_mock_data(tmp_path, quiet, one_device):
  tfds = pytest.importorskip("tensorflow_datasets")
  from sem_jax.data.sources import load_dataset
  with tfds.testing.mock_data(num_examples=24):
    ds = load_dataset("svhn")
    assert ds.image_shape == (32, 32, 3) and ds.num_classes == 10 and ds.num_train == 24
    assert ds.order.startswith("tfds")      # svhn_cropped carries no index ids
    m = generate_noise(tiny_config("", dataset="svhn", method="random"),
                       str(tmp_path / "random"), log=quiet, devices=one_device)
    assert m["dataset"]["name"] == "svhn" and m["final_pass_regenerated"] == 24
    lsp = _generate("", str(tmp_path / "lsp"), "lsp", quiet, one_device, dataset="svhn",
                    lsp_patch=8)
    assert lsp["budget"] == {"norm": "l2", "radius_levels": pytest.approx(6 * 32 * 3 ** 0.5),
                             "patch": 8}
    assert all(ok for ok, _ in verify(str(tmp_path / "lsp")))


def test_entf_crafts_against_an_adversarially_trained_reference(npz_path, tmp_path, quiet,
                                                                one_device):
  """EntF end to end: a PGD-AT victim on clean data is the reference; the noise is verified,
  seeded, and moves the reference's features away from their class centroids; a normally
  trained reference and a missing one are refused."""
  from sem_jax.core.poisons import entf
  from sem_jax.core.units import normalize
  from sem_jax.run.victim import load_victim
  import jax.numpy as jnp
  robust, plain = str(tmp_path / "robust"), str(tmp_path / "plain")
  evaluate_noise(tiny_eval_config(npz_path, train_steps=20, adv_radius=4.0), None, robust,
                 log=quiet, devices=one_device)
  cfg = tiny_config(npz_path, method="entf", tap_model=robust, noise_steps=10,
                    noise_step_size=2.0)
  m = generate_noise(cfg, str(tmp_path / "a"), log=quiet, devices=one_device)
  assert m["budget"] == {"norm": "linf", "radius_levels": 8} and m["noise_max_abs"] <= 8
  assert m["entf_reference"]["adv_radius"] == 4.0
  assert all(ok for ok, _ in verify(str(tmp_path / "a")))
  again = generate_noise(cfg, str(tmp_path / "b"), log=quiet, devices=one_device)
  assert again["noise_sha256"] == m["noise_sha256"]
  other = generate_noise(cfg.replace(seed=1), str(tmp_path / "c"), log=quiet, devices=one_device)
  assert other["noise_sha256"] != m["noise_sha256"]
  # the published images' features lie farther from their own centroid than the clean ones'
  model, state, _, _ = load_victim(robust, one_device)
  embed = entf.embedding_fn(model, state)
  arrays = np.load(npz_path)
  x, y = arrays["x_train"], arrays["y_train"]
  noise = load_noise(str(tmp_path / "a" / "noise.npy"), dtype="int8")
  clean = embed(normalize(jnp.asarray(x)))[0]
  cents = entf.centroids(clean, jnp.asarray(y), 4)
  published = np.clip(x.astype(int) + noise, 0, 255).astype(np.uint8)
  rows = np.arange(len(y))
  before = entf.distances(clean, cents)[rows, y]
  after = entf.distances(embed(normalize(jnp.asarray(published)))[0], cents)[rows, y]
  assert float(after.mean()) > float(before.mean())
  evaluate_noise(tiny_eval_config(npz_path, train_steps=4), None, plain, log=quiet,
                 devices=one_device)
  with pytest.raises(SemJaxError, match="must be adversarially trained on clean data"):
    generate_noise(cfg.replace(tap_model=plain), str(tmp_path / "d"), log=quiet,
                   devices=one_device)
  with pytest.raises(SemJaxError, match="method 'entf' needs tap_model"):
    cfg.replace(tap_model="").validate()
  # TAP's, hypo's and EntF's fixed model must have been trained on this dataset's classes
  from types import SimpleNamespace
  with pytest.raises(SemJaxError, match=r"tap_model .*robust was trained on .*\(4 classes, "
                                        r".*this run's dataset has 10 classes"):
    load_victim(robust, one_device, for_data=SimpleNamespace(num_classes=10,
                                                             image_shape=x.shape[1:]))
