"""The documentation site builds offline with every warning an error (mkdocs --strict: broken
links and anchors, pages missing from the build, docstrings the API reference cannot read)."""
import os
import subprocess
import sys

from conftest import REPO


def test_the_docs_site_builds_strictly(tmp_path):
  site = tmp_path / "site"
  r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
                     cwd=REPO, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stdout + r.stderr
  api = (site / "api" / "index.html").read_text()
  for name in ("generate_noise", "CraftSpec", "pgd_attack", "psnr"):   # docstrings rendered
    assert name in api, name
  assert (site / "photos" / "index.html").exists() and (site / "search" / "search_index.json").exists()
