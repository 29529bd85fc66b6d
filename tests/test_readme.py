"""The README's and docs/library.md's library examples run as written and compute SEM noise."""
import os
import re

import numpy as np
import pytest

from conftest import REPO


def _python_blocks(path):
  return re.findall(r"```python\n(.*?)```", open(path).read(), flags=re.S)


@pytest.mark.parametrize("page", ["README.md", "docs/library.md"])
def test_the_library_example_runs_as_written(page):
  (block,) = _python_blocks(os.path.join(REPO, page))
  scope = {}
  exec(compile(block, page, "exec"), scope)
  noise = np.asarray(scope["noise"])
  x = scope["x"]
  assert noise.dtype == np.int8 and noise.shape == x.shape
  assert np.abs(noise.astype(int)).max() <= 8 and (noise != 0).any()
  assert scope["crafter"].method == "sem" and scope["crafter"].radius_levels == 8
  if "published" in scope:
    assert np.array_equal(scope["published"], np.clip(x.astype(int) + noise, 0, 255))
