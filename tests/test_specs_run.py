"""Every spec in specs/ runs end to end on the embedded demo model: exit 0 (every
expectation holds), an entry for every analysis, and attribution identities."""
import json
from pathlib import Path

import pytest
from circ.compiler.api import compile_file

from circ.cli.run import run_spec

SPECS = sorted(p for p in (Path(__file__).parent.parent / "specs").glob("*.circ"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_runs_and_its_expectations_hold(path, tmp_path):
    code = run_spec(str(path), str(tmp_path), model=None, device=None, batch_size=32, seed=0,
                    trust_remote_code=False, progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    failed = [e for e in results["expectations"] if not e["passed"]]
    assert code == 0, f"failed expectations: {failed}"
    spec = compile_file(path)
    assert set(results["analyses"]) == {a.name for a in spec.analyses}
    for name, result in results["analyses"].items():
        if result["kind"] == "attribute" and set(result["values"]) >= {"EMBED", "BIAS"}:
            assert abs(sum(result["values"].values()) - result["total"]) < 1e-4, name
    assert (tmp_path / "report.html").is_file()
