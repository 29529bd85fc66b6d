"""Every ```python block of README.md and docs/**/*.md runs as written, and every public function
and class of sem_jax.core carries an example that runs (doctest)."""
import doctest
import glob
import inspect
import os
import re

import pytest

from conftest import REPO

PAGES = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in
                               glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True))
BLOCKS = [(page, i, block) for page in PAGES for i, block in
          enumerate(re.findall(r"```python\n(.*?)```", open(os.path.join(REPO, page)).read(), re.S))]


def test_the_pages_have_python_examples():
  assert {"README.md", "docs/library.md"} <= {page for page, _, _ in BLOCKS}
  assert len(BLOCKS) >= 4


@pytest.mark.parametrize("page,index,block", BLOCKS, ids=[f"{p}:{i}" for p, i, _ in BLOCKS])
def test_every_python_block_of_the_docs_runs(page, index, block, capsys):
  exec(compile(block, f"{page} block {index}", "exec"), {"__name__": f"doc_example_{index}"})


def _public_core():
  from sem_jax import core
  objs = {name: getattr(core, name) for name in core.__all__}
  return {name: obj for name, obj in objs.items() if (inspect.isfunction(obj) or inspect.isclass(obj))
          and obj.__module__.startswith("sem_jax")}     # not the alias Levels = float


PUBLIC = sorted(_public_core())


def test_every_public_core_function_and_class_has_an_example():
  finder = doctest.DocTestFinder(recurse=False)
  missing = [name for name, obj in _public_core().items()
             if not any(t.examples for t in finder.find(obj, name, globs={}))]
  assert not missing, f"no example in the docstring of {missing}"
  assert len(PUBLIC) >= 25


@pytest.mark.parametrize("name", PUBLIC)
def test_the_example_of_each_public_core_object_runs(name):
  obj = _public_core()[name]
  failed = []
  runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  ran = 0
  for t in doctest.DocTestFinder(recurse=False).find(obj, name, globs={}):
    ran += runner.run(t, out=failed.append).attempted
  assert not failed, "\n".join(failed)
  assert ran >= 2      # an import and at least one checked line
