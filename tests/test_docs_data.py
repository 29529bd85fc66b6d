"""Every table shipped under docs/ ships as data beside its page: a study's own JSON, or the
page's ``.tables.json`` (tools/docs_tables.py), equal to what the page shows."""
import json
import os

from conftest import REPO, load_tool

T = load_tool("docs_tables")


def test_every_docs_table_has_its_data_beside_it_and_they_agree():
  pages = T.pages()
  assert len(pages) >= 10
  stale = [md for md, js in pages.items()
           if not os.path.exists(js) or open(js, encoding="utf-8").read() != T.render(md)]
  assert not stale, f"rerun python tools/docs_tables.py: {stale}"
  study = os.path.join(REPO, "docs", "attacks_mnist5k.json")
  assert json.load(open(study))["rows"]      # a study's page keeps the study's own JSON


def test_the_parser_reads_numbers_and_headings():
  md = "# A\n\n## g\n\n| noise | ρa 0 | time |\n|---|---|---|\n| sem | **43.7** | 743 s |\n"
  (t,) = T.tables(md)
  assert t == {"heading": "g", "columns": ["noise", "ρa 0", "time"],
               "rows": [["sem", 43.7, "743 s"]]}
  assert T.tables(md.replace("43.7", "44.7"))[0]["rows"][0][1] == 44.7
