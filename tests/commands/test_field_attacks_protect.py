"""On MNIST-5k, victims trained on LSP's, AR's and CUDA's noise score far below the clean victim
(short victims: 300 steps of 128; every attack at the full protocol: the README's table)."""
import os

from sem_jax.commands.evaluate import evaluate_noise
from sem_jax.commands.generate import generate_noise

# Measured on one device. 150 steps: clean 0.844, lsp 0.103, ar 0.440 (2-core AMD EPYC), but
# clean 0.810, ar 0.751 (2-core Intel Xeon: the victim had not yet taken AR's shortcut); 300
# steps on the Intel Xeon: clean 0.851, ar 0.509. OPS's one pixel is not learnt in so few steps
# under pad-and-crop: its numbers are the study's (README). CUDA at 300 steps: 0.279 (AMD EPYC).
MARGIN = {"lsp": 0.6, "ar": 0.25, "cuda": 0.4}


def _config(name):
  from conftest import REPO
  from sem_jax.run.configfile import load_config_file
  return load_config_file(os.path.join(REPO, "configs", *name.split("/")) + ".py")


def _victim():
  return _config("eval/mnist5k").replace(train_steps=300, lr_decay_every=200, eval_every=300,
                              log_every=300, checkpoint_every=300)


def test_lsp_ar_and_cuda_protect_mnist5k(tmp_path, quiet, one_device):
  """One test, so that the clean victim the attacks are measured against trains once
  (parametrised tests on several pytest-xdist workers each trained it)."""
  clean = evaluate_noise(_victim(), None, str(tmp_path / "clean"), log=quiet,
                         devices=one_device)["final"]["test_accuracy"]
  assert clean > 0.75
  for method in sorted(MARGIN):
    noise = str(tmp_path / method)
    generate_noise(_config(f"mnist5k/{method}"), noise, log=quiet, devices=one_device)
    acc = evaluate_noise(_victim(), noise, str(tmp_path / f"v-{method}"), log=quiet,
                         devices=one_device)["final"]["test_accuracy"]
    assert acc < clean - MARGIN[method], (method, acc, clean)
