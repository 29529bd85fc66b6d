"""Switching a config's model, dataset or method on the command line: the fields the file set for
its old choice take the new choice's defaults (unless the command line sets them too), and
what cannot be defaulted is an error naming the override to add."""
import json
import os

import pytest

from conftest import REPO
from sem_jax.errors import SemJaxError
from sem_jax.run.config import EvalConfig, GenerateConfig
from sem_jax.run.configfile import apply_overrides, load_config, load_config_file
from sem_jax.run.couplings import METHOD_PROFILES

EVAL = os.path.join(REPO, "configs/eval/mnist5k.py")
SEM = os.path.join(REPO, "configs/mnist5k/sem.py")
APBENCH_VICTIMS = ("se_resnet18", "mobilenet_v2", "vit", "cait")


@pytest.mark.parametrize("model", APBENCH_VICTIMS + ("resnet18", "resnet50", "vgg11_bn",
                                                     "densenet121", "wrn34_10"))
def test_every_victim_loads_from_the_mnist5k_eval_config(model):
  notes = []
  cfg = load_config(EVAL, [f"model={model}"], EvalConfig, log=notes.append)
  assert cfg.model == model and cfg.model_width == 0
  assert "config: model_width: 16 -> 0 (the default of model" in notes[0]
  want = ("adam", 1e-3, 0.0) if model in ("vit", "cait") else ("sgd", 0.1, 5e-4)
  assert (cfg.optimizer, cfg.learning_rate, cfg.weight_decay) == want
  assert cfg.train_steps == 1000 and cfg.cutout_size == 8   # the file's other choices stay


def test_a_width_set_on_the_command_line_wins_and_a_wrong_one_names_the_fix():
  cfg = load_config(EVAL, ["model=resnet18", "model_width=8"], EvalConfig)
  assert cfg.model_width == 8
  with pytest.raises(SemJaxError, match=r"not 'vit'; set --config.model_width=0"):
    load_config(EVAL, ["model=vit", "model_width=8"], EvalConfig)


def test_switching_back_from_a_transformer_restores_sgd_and_keeps_a_set_rate():
  vit = EvalConfig(model="vit", optimizer="adam", learning_rate=3e-4, weight_decay=0.0)
  cfg = apply_overrides(vit, ["model=resnet18"])
  assert (cfg.optimizer, cfg.learning_rate, cfg.weight_decay, cfg.momentum) == ("sgd", 0.1,
                                                                               5e-4, 0.9)
  cfg = apply_overrides(vit, ["model=cait"])   # both trained with Adam: the rate stays
  assert (cfg.optimizer, cfg.learning_rate) == ("adam", 3e-4)
  cfg = apply_overrides(vit, ["model=resnet18", "learning_rate=0.05"])
  assert (cfg.optimizer, cfg.learning_rate) == ("sgd", 0.05)


def test_the_same_model_again_changes_nothing():
  base = load_config(EVAL, [], EvalConfig)
  assert load_config(EVAL, ["model=small_cnn"], EvalConfig) == base


def test_switching_dataset_resets_the_sizes_that_follow_the_image():
  imnet = EvalConfig(dataset="imagenet_subset", data_dir="/data/tfds", num_classes=100,
                     image_size=256, crop_size=224, cutout_size=64)
  cfg = apply_overrides(imnet, ["dataset=cifar10"])
  assert (cfg.image_size, cfg.crop_size, cfg.num_classes, cfg.cutout_size) == (0, 0, 0, 16)
  assert cfg.data_dir == "/data/tfds"               # one TFDS data directory serves both
  cfg = apply_overrides(imnet, ["dataset=mnist5k"])
  assert (cfg.data_dir, cfg.crop_size, cfg.cutout_size) == ("", 0, 8)
  back = apply_overrides(EvalConfig(dataset="cifar10"), ["dataset=imagenet_subset"])
  assert (back.image_size, back.crop_size, back.num_classes) == (256, 224, 100)
  gen = apply_overrides(GenerateConfig(dataset="cifar10", lsp_patch=8), ["dataset=imagenet_subset"])
  assert (gen.lsp_patch, gen.crop_size) == (32, 224)


def test_a_dataset_that_needs_a_path_names_the_override():
  with pytest.raises(SemJaxError, match=r"needs data_dir: .*\(--config.data_dir=FILE.npz\)"):
    load_config(EVAL, ["dataset=npz"], EvalConfig)
  with pytest.raises(SemJaxError, match=r"\(--config.data_dir=FOLDER\)"):
    load_config(SEM, ["dataset=folder"])
  cfg = load_config(SEM, ["dataset=npz", "data_dir=/x.npz"])
  assert cfg.data_dir == "/x.npz"


def test_switching_method_takes_the_new_methods_schedule():
  notes = []
  cfg = load_config(os.path.join(REPO, "configs/mnist5k/tap.py"), ["method=sem"], log=notes.append)
  assert (cfg.noise_steps, cfg.noise_step_size, cfg.num_samples, cfg.tap_model) == (10, 1.6, 5, "")
  assert any(n.startswith("config: tap_model: 'runs/clean' -> ''") for n in notes)
  cfg = load_config(SEM, ["method=em"])
  assert cfg.num_samples == 1 and cfg.noise_steps == 10
  cfg = load_config(SEM, ["method=lsp"])
  assert cfg.noise_radius == 6.0
  cfg = load_config(SEM, ["method=rem"])           # rem shares SEM's fields: the file's J stays
  assert cfg == load_config(SEM, []).replace(method="rem")
  release = GenerateConfig(method="em", em_variant="release", num_samples=1)
  assert apply_overrides(release, ["method=sem"]).em_variant == "aligned"
  with pytest.raises(SemJaxError, match="not 'sem'; set --config.em_variant=aligned"):
    apply_overrides(release, ["method=sem", "em_variant=release"]).validate()


def test_a_method_that_needs_a_model_names_the_override():
  with pytest.raises(SemJaxError, match=r"needs tap_model: .*add --config.tap_model=WORKDIR"):
    load_config(SEM, ["method=tap"])
  cfg = load_config(SEM, ["method=hypo", "tap_model=runs/clean"])
  assert (cfg.noise_steps, cfg.augment, cfg.project_to_valid_range) == (100, False, True)


@pytest.mark.parametrize("method", ["em", "tap", "lsp", "ar", "hypo", "ntga"])
def test_method_profiles_agree_with_the_shipped_configs(method):
  built = load_config_file(os.path.join(REPO, f"configs/cifar10/{method}.py"))
  for name, value in METHOD_PROFILES[method].items():
    assert getattr(built, name) == value, name


def test_resolved_fields_are_what_the_run_records(tmp_path, capsys):
  from sem_jax.cli import main
  wd = tmp_path / "v"
  assert main(["evaluate", "--config", EVAL, "--noise", "none", "--workdir", str(wd),
               "--config.model=linear", "--config.train_steps=1", "--config.eval_every=1",
               "--config.augment=false"]) == 0
  out = capsys.readouterr().out
  assert "config: model_width: 16 -> 0 (the default of model 'linear'" in out
  recorded = json.loads((wd / "run_config.json").read_text())
  assert recorded["config"]["model"] == "linear" and recorded["config"]["model_width"] == 0
