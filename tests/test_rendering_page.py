"""The code block of docs/rendering.md runs as written, from a folder laid out as the
repository's root after `make demo` (specs/ and a run's out/mcq_correct_letter), and
writes what it says: the two diagrams and the report."""
import re
import shutil
from pathlib import Path

import pytest
from circ import api

ROOT = Path(__file__).resolve().parents[1]
SMALL = '''spec "small"
model demo
data clean = mcq(n=8, labels="ABCD", seed=0)
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads + mlps, on=clean, metric=ld)
circuit output = top(dla, 3)
'''


def test_the_rendering_pages_code_block_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "rendering.md").read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    (tmp_path / "small.circ").write_text(SMALL)
    api.run(tmp_path / "small.circ", progress=False, out=tmp_path / "out" / "mcq_correct_letter")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "docs/rendering.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["dot"].startswith("digraph")
    assert (tmp_path / "out" / "report.html").read_text().startswith("<!DOCTYPE html>")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz is not installed: the diagrams are written as .dot beside the request")
    assert (tmp_path / "circuit.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    assert (tmp_path / "hypothesis.svg").exists()
