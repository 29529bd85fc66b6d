"""Every table in docs/ as data: writes ``<page>.tables.json`` beside each Markdown page that
holds a table (pages a study wrote keep the study's own ``<page>.json`` instead).

Each file lists the page's tables in order: {"heading": the section it sits under, "columns":
header cells, "rows": body rows as lists of cells, numbers as numbers ('95.3' -> 95.3, '**10.0**'
-> 10.0, '743 s' stays text)}. tests/test_docs_data.py fails when a page and its file disagree.

  python tools/docs_tables.py            # rewrite every docs/**/<page>.tables.json
"""
from __future__ import annotations

import glob
import json
import os
import re
import sys

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?")


def _cell(text: str):
  t = text.strip().strip("*").strip()
  return float(t) if _NUMBER.fullmatch(t) else text.strip()


def tables(markdown: str) -> list[dict]:
  """The pipe tables of a Markdown text, each with the heading above it."""
  out, heading, current = [], "", None
  for line in markdown.splitlines():
    if line.startswith("#"):
      heading = line.lstrip("#").strip()
    if line.startswith("|"):
      cells = [c for c in line.strip().strip("|").split("|")]
      if current is None:
        current = {"heading": heading, "columns": [c.strip() for c in cells], "rows": []}
        out.append(current)
      elif not all(set(c.strip()) <= set("-: ") for c in cells):
        current["rows"].append([_cell(c) for c in cells])
    else:
      current = None
  return out


def pages() -> dict[str, str]:
  """page path -> the path of its tables' JSON, for every page with a table and no study JSON."""
  out = {}
  for md in sorted(glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True)):
    if os.path.exists(md[:-3] + ".json"):
      continue
    if tables(open(md, encoding="utf-8").read()):
      out[md] = md[:-3] + ".tables.json"
  return out


def render(md: str) -> str:
  return json.dumps(tables(open(md, encoding="utf-8").read()), indent=1, ensure_ascii=False) + "\n"


def main() -> int:
  for md, js in pages().items():
    with open(js, "w", encoding="utf-8") as f:
      f.write(render(md))
    print(os.path.relpath(js, DOCS))
  return 0


if __name__ == "__main__":
  sys.exit(main())
