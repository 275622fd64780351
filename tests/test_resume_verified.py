"""The resume cache is verified: an entry edited on disk is computed again, not
trusted, and the resumed results equal those of a fresh run."""
import io
import json

import pytest
from conftest import mcq_examples, write_jsonl

from circ.cli.run import run_spec
from circ.runtime.execute.resume_store import CACHE_FOLDER, entry_digest

SPEC = '''model hf("{model}")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads, on=clean, metric=ld)
analysis first = attribute(mlps, on=clean, metric=ld)
'''

pytestmark = pytest.mark.usefixtures("one_thread")


def run(spec, out, resume=False):
    err = io.StringIO()
    code = run_spec(str(spec), str(out), model=None, device=None, batch_size=4, seed=0, trust_remote_code=False,
                    progress=False, resume=resume, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def analyses(out):
    return json.loads((out / "results.json").read_text())["analyses"]


@pytest.mark.parametrize("forge_digest", [False, True], ids=["value-edited", "digest-of-another-op"])
def test_an_edited_cache_entry_is_recomputed(tmp_path, tiny_dir, forge_digest):
    write_jsonl(tmp_path / "data.jsonl", mcq_examples(4, seed=3))
    spec = tmp_path / "s.circ"
    spec.write_text(SPEC.format(model=tiny_dir))
    out = tmp_path / "out"
    assert run(spec, out)[0] == 0
    fresh = analyses(out)
    entries = {json.loads(p.read_text())["op"]: p for p in (out / CACHE_FOLDER).glob("*.json")}
    assert set(entries) == {"analysis:dla", "analysis:first"}
    record = json.loads(entries["analysis:dla"].read_text())
    record["value"]["values"]["L0.H1"] = 1234.5
    if forge_digest:  # a digest computed under another op's key does not pass either
        record["digest"] = entry_digest("0" * 64, "analysis:dla", record["value"])
    entries["analysis:dla"].write_text(json.dumps(record))

    code, stderr = run(spec, out, resume=True)
    assert code == 0, stderr
    assert "does not match its digest; analysis:dla runs again" in stderr
    assert "reused analysis:first" in stderr and "reused analysis:dla" not in stderr
    assert "circ: reused 1 finished analyses" in stderr
    resumed = analyses(out)
    assert resumed["dla"]["values"]["L0.H1"] == fresh["dla"]["values"]["L0.H1"] != 1234.5
    assert resumed == fresh
    rewritten = json.loads(entries["analysis:dla"].read_text())
    assert rewritten["digest"] == entry_digest(rewritten["key"], "analysis:dla", rewritten["value"])
    assert rewritten["value"]["values"]["L0.H1"] != 1234.5
