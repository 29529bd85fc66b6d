"""The package's layout: data flows one way (no import cycle), modules and functions stay small."""
import ast
import os

from conftest import REPO

PKG = os.path.join(REPO, "sem_jax")
# The layers, lowest first: a module imports only from its own layer or lower ones.
LAYERS = ("errors", "core", "files", "data", "run", "commands", "suites", "cli")


def _modules() -> dict[str, str]:
  """Dotted module name below sem_jax ("core.noise", "cli") -> file path."""
  out = {}
  for root, _, files in os.walk(PKG):
    for f in sorted(files):
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(root, f), PKG)[:-3].replace(os.sep, ".")
        out[rel.removesuffix(".__init__") if rel != "__init__" else rel] = os.path.join(root, f)
  return out


def _imports(path: str) -> set[str]:
  """sem_jax modules imported anywhere in the file (module level or inside functions)."""
  mods = set(_modules())
  out = set()

  def add(dotted):
    while dotted and dotted not in mods:   # a name imported from a module: the module
      dotted = dotted.rpartition(".")[0]
    if dotted:
      out.add(dotted)

  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sem_jax":
      base = node.module.partition(".")[2]
      for a in node.names:
        add(f"{base}.{a.name}" if base else a.name)
    elif isinstance(node, ast.Import):
      for a in node.names:
        if a.name.startswith("sem_jax."):
          add(a.name.partition(".")[2])
  return out


def _layer(module: str) -> int:
  return LAYERS.index(module.split(".")[0])


def test_every_module_sits_in_a_layer_and_imports_only_downwards():
  mods = {m: p for m, p in _modules().items() if m not in ("__init__", "__main__")}
  assert {m.split(".")[0] for m in mods} == set(LAYERS)
  upward = [f"{m} imports {n}" for m, p in mods.items() for n in _imports(p)
            if n not in ("__init__", "__main__") and _layer(n) > _layer(m)]
  assert not upward, upward
  # the check sees a planted upward import through each import form
  probe = os.path.join(REPO, "tests", "_probe_layer.py")
  try:
    with open(probe, "w") as f:
      f.write("from sem_jax.run import loop\nimport sem_jax.suites.study\n"
              "from sem_jax.commands.generate import generate_noise\n")
    assert _imports(probe) == {"run.loop", "suites.study", "commands.generate"}
  finally:
    os.remove(probe)


# Inside core, lowest first: the base modules (core/*.py: units, keys, checks, augment, attacks,
# train, quality), then the sub-packages; each imports only from its own sub-layer or lower ones.
CORE_LAYERS = ("core", "core.nets", "core.crafting", "core.poisons", "core.thief")


def _core_layer(module: str) -> int:
  parts = module.split(".")
  sub = ".".join(parts[:2])
  return CORE_LAYERS.index(sub) if sub in CORE_LAYERS else 0


def test_core_sub_packages_import_only_downwards():
  mods = {m: p for m, p in _modules().items() if m.startswith("core")}
  subs = {".".join(m.split(".")[:2]) for m in mods if m.count(".") >= 2}
  assert subs == set(CORE_LAYERS[1:]), subs
  # the notebook user's modules sit in the base and in crafting, apart from the comparisons
  assert {"core.units", "core.keys", "core.train", "core.attacks"} <= set(mods)
  assert {"core.crafting.noise", "core.crafting.crafters", "core.thief.victim",
          "core.poisons.ntga", "core.nets.models"} <= set(mods)
  upward = [f"{m} imports {n}" for m, p in mods.items() if m != "core" for n in _imports(p)
            if n.startswith("core") and n != "core" and _core_layer(n) > _core_layer(m)]
  assert not upward, upward
  # only core/__init__ (the public names) may import every sub-package
  assert _core_layer("core.thief.victim") > _core_layer("core.crafting.noise") > _core_layer("core.keys")


def _cycle(graph: dict[str, set[str]]):
  """One import cycle as a list of modules, or None."""
  state, stack = {}, []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for n in sorted(graph.get(m, ())):
      if state.get(n) == "open":
        return stack[stack.index(n):] + [n]
      if n not in state:
        found = visit(n)
        if found:
          return found
    state[m] = "done"
    stack.pop()
    return None

  for m in sorted(graph):
    if m not in state:
      found = visit(m)
      if found:
        return found
  return None


def test_no_import_cycle_between_package_modules():
  graph = {m: _imports(p) - {m, "__init__"} for m, p in _modules().items() if m != "__init__"}
  assert _cycle(graph) is None, " -> ".join(_cycle(graph))
  # the detector itself finds a planted cycle
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_module_over_400_lines_and_no_function_over_80():
  long_modules, long_functions = [], []
  for m, path in _modules().items():
    text = open(path).read()
    if text.count("\n") > 400:
      long_modules.append(m)
    for node in ast.walk(ast.parse(text)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if node.end_lineno - node.lineno + 1 > 80:
          long_functions.append(f"{m}.{node.name} ({node.end_lineno - node.lineno + 1} lines)")
  assert not long_modules and not long_functions, (long_modules, long_functions)


def test_every_shipped_config_loads_and_validates():
  """configs/**/*.py: each get_config() returns a valid config (a path it needs supplied)."""
  import glob
  from sem_jax.run.configfile import load_config_file
  files = sorted(f for f in glob.glob(os.path.join(REPO, "configs", "*", "*.py"))
                 if os.path.basename(f) not in ("__init__.py", "common.py"))
  assert len(files) >= 22
  for f in files:
    cfg = load_config_file(f)
    if getattr(cfg, "dataset", None) in ("npz", "folder", "imagenet_subset") and not cfg.data_dir:
      cfg = cfg.replace(data_dir="/user/supplies/this")
    assert cfg.validate() is not None, f


def test_study_configs_agree_on_shared_experiment_names():
  """An experiment name several shipped study configs list names one run in a shared
  workdir: its generation, victim and noise must be equal everywhere (else the second
  study is refused)."""
  import glob
  from sem_jax.run.configfile import load_config_file
  seen = {}
  files = sorted(glob.glob(os.path.join(REPO, "configs", "study", "*.py")))
  files = [f for f in files if os.path.basename(f) not in ("__init__.py", "common.py")]
  assert len(files) >= 4
  shared = 0
  for f in files:
    for e in load_config_file(f).experiments:
      d = e.to_dict()
      key = (d["generate"], d["evaluation"], d["noise"])
      want = 1 if e.name.endswith("-seed1") else 0   # a replicate reseeds generation and victims
      assert e.evaluation.seed == want and (e.generate is None or e.generate.seed == want), e.name
      if e.name in seen:
        shared += 1
        assert seen[e.name] == key, f"{os.path.basename(f)}: {e.name} differs"
      seen[e.name] = key
  assert shared >= 7     # study_cpu.py is made of rows the other configs list
