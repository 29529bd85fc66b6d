"""Shared fixtures and helpers.

Devices: eight fake CPU devices exist in this process (``jax_num_cpu_devices``), but a run
that names no devices uses ONE of them, unless the test says how many it wants with
``@pytest.mark.devices(N)`` (or passes ``devices=`` itself). Subprocesses get one device unless
the test sets ``XLA_FLAGS`` for them.
"""
import os

import socket  # noqa: E402
import tempfile  # noqa: E402

# One persistent XLA compilation cache for the whole test run, never ~/.cache: this process,
# every pytest-xdist worker of the run (they share PYTEST_XDIST_TESTRUNUID) and every subprocess
# load a program another test compiled (the suite compiles the same tiny runs many times). The
# tests of the cache itself give their subprocesses their own directory.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
XLA_CACHE = os.path.join(tempfile.gettempdir(), f"sem_jax_test_xla_cache_{_RUN}")
os.environ["SEM_JAX_COMPILATION_CACHE"] = XLA_CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.1"
# Prepared datasets (folder, imagenet_subset) go to a fresh folder per test session, never ~/.cache.
os.environ["SEM_JAX_DATA_CACHE"] = tempfile.mkdtemp(prefix="sem_jax_test_cache_")

# The suite compiles hundreds of small programs and runs each for a few steps, so XLA:CPU's
# compile time is most of its time. LLVM at -O1 with the classic (non-MLIR) fusion emitters
# compiles them 2-3x faster than the defaults, at the same run time (a tiny generation: 10.5 s
# of compiles -> 3.0 s; 60 steps of a width-16 surrogate run 2.8 s against 3.4 s; 2-core AMD
# EPYC). The code XLA emits differs, not the math: every test compares runs made under the
# same flags. Checked once per test session, in a child process, because XLA aborts on a flag
# it does not know (a later jaxlib may drop one): then the suite runs at XLA's defaults.
# SEM_JAX_TEST_COMPILE_FLAGS="" runs it at the defaults on purpose.
COMPILE_FLAGS = "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false"


def _compile_flags() -> str:
  known = os.environ.get("SEM_JAX_TEST_COMPILE_FLAGS")
  if known is None:
    import subprocess
    import sys
    probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"],
                           env={**os.environ, "XLA_FLAGS": COMPILE_FLAGS, "JAX_PLATFORMS": "cpu"},
                           capture_output=True, timeout=300)
    known = COMPILE_FLAGS if probe.returncode == 0 else ""
    os.environ["SEM_JAX_TEST_COMPILE_FLAGS"] = known   # pytest-xdist's workers inherit it
  return known


TEST_XLA_FLAGS = _compile_flags()
_flag = "--xla_force_host_platform_device_count=8"
for _f in (*TEST_XLA_FLAGS.split(), _flag):
  if _f.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _f).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

os.makedirs(XLA_CACHE, exist_ok=True)
jax.config.update("jax_compilation_cache_dir", XLA_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)

from sem_jax.run.config import GenerateConfig  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool(name: str):
  """The module tools/{name}.py (the tools are scripts, not a package)."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def synthetic_arrays(n_train=52, n_test=20, size=16, classes=4, seed=0):
  """Class c = a bright square in quadrant c on dark noise; uint8 NHWC, 1 channel."""
  rng = np.random.default_rng(seed)

  def make(n):
    y = np.arange(n) % classes
    x = rng.integers(0, 60, size=(n, size, size, 1))
    h = size // 2
    for i, c in enumerate(y):
      r, q = divmod(int(c), 2)
      x[i, r * h + 2:r * h + h - 2, q * h + 2:q * h + h - 2] += 150
    return x.astype(np.uint8), y.astype(np.int64)

  (xt, yt), (xs, ys) = make(n_train), make(n_test)
  return {"x_train": xt, "y_train": yt, "x_test": xs, "y_test": ys}


@pytest.fixture
def npz_path(tmp_path):
  path = tmp_path / "tiny.npz"
  np.savez(path, **synthetic_arrays())
  return str(path)


def tiny_config(npz: str, **changes) -> GenerateConfig:
  """A generation config that runs in seconds: 52 images of 16x16, batch 16 (52 mod 16 = 4)."""
  base = GenerateConfig(
      method="sem", dataset="npz", data_dir=npz, model="small_cnn", model_width=4, seed=0,
      batch_size=16, train_steps=4, learning_rate=0.05, lr_decay_every=100, augment=True,
      augment_pad=2, noise_radius=8.0, noise_steps=2, noise_step_size=4.0, num_samples=2,
      adv_radius=4.0, adv_steps=2, adv_step_size=2.0, checkpoint_every=2, log_every=1,
      unroll_loops=False)
  return base.replace(**changes)


@pytest.fixture
def one_device():
  return jax.devices()[:1]


@pytest.fixture
def quiet():
  return lambda *_: None


def write_config_file(path, cfg: GenerateConfig) -> str:
  """A config file whose get_config() returns cfg (for tests that run the CLI in a subprocess)."""
  import json
  with open(path, "w") as f:
    f.write("import json\nfrom sem_jax.run.config import from_dict\n\n\ndef get_config():\n"
            f"  return from_dict(json.loads({json.dumps(cfg.to_dict())!r}))\n")
  return str(path)


@pytest.fixture
def colour_npz(tmp_path):
  """The tiny set in 3 channels that differ (so grayscale changes them)."""
  a = synthetic_arrays()
  for k in ("x_train", "x_test"):
    x = a[k][..., 0].astype(np.int16)
    a[k] = np.stack([x, np.clip(x + 40, 0, 255), x // 2], -1).astype(np.uint8)
  path = tmp_path / "colour.npz"
  np.savez(path, **a)
  return str(path)


def tiny_eval_config(npz: str, **changes):
  """A victim config that trains in seconds on the tiny npz (batch 16, 6 steps)."""
  from sem_jax.run.config import EvalConfig
  base = EvalConfig(dataset="npz", data_dir=npz, model="small_cnn", model_width=4, seed=0,
                    batch_size=16, train_steps=6, learning_rate=0.05, lr_decay_every=100,
                    augment=True, augment_pad=2, adv_radius=0.0, adv_steps=2, cutout_size=4,
                    eval_every=3, log_every=3, checkpoint_every=3, unroll_loops=False)
  return base.replace(**changes)


def write_any_config_file(path, expr: str, imports: str = "") -> str:
  """A config file whose get_config() returns the Python expression ``expr``."""
  with open(path, "w") as f:
    f.write(f"{imports}\n\ndef get_config():\n  return {expr}\n")
  return str(path)


def flip_byte(path, pos: int, mask: int) -> None:
  """Tamper with a file: XOR the byte at ``pos`` (negative counts from the end) with ``mask``."""
  data = bytearray(open(path, "rb").read())
  data[pos] ^= mask
  open(path, "wb").write(bytes(data))


def subprocess_env(devices: int, **extra) -> dict:
  """The environment of a child process of ``devices`` fake CPU devices."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count={devices}".strip()
  env["PYTHONUNBUFFERED"] = "1"
  env.update({k: str(v) for k, v in extra.items()})
  return env


def free_port() -> int:
  """A free TCP port on 127.0.0.1 (a coordinator's address)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def make_photos(root, classes=("cat", "dog", "owl"), per_class=7, size=(20, 24), seed=0):
  """Class folders of small RGB photos (PNG and JPEG), deliberately of mixed sizes."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  for c, name in enumerate(classes):
    d = root / name
    d.mkdir(parents=True)
    for i in range(per_class):
      h, w = size if i % 2 == 0 else (size[0] + 6, size[1] + 2)
      arr = rng.integers(0, 80, (h, w, 3)).astype(np.uint8)
      arr[:, :, c] += 150
      ext = "png" if i % 3 else "jpg"
      Image.fromarray(arr).save(d / f"{name}_{i:02d}.{ext}")
  return root


# The longest tests (about 25-70 s each here) start first, so that with several workers
# (pytest-xdist) none of them is left running alone at the end.
SLOW_FIRST = ("test_notebook.py", "test_faults.py", "test_study.py::test_study_pool",
              "test_publish.py::test_thirty_photos", "test_study.py::test_tiny_study",
              "test_field_attacks_protect.py", "test_field_attacks.py::test_field_attack_writes"
              "_verified_seeded_noise[dc]", "test_apbench_nets.py::test_each_victim",
              "test_dvae.py::test_purify", "test_detect.py")


def pytest_collection_modifyitems(items):
  items.sort(key=lambda item: not any(s in item.nodeid for s in SLOW_FIRST))
