"""The same spec, model and seed give byte-identical results.json apart from the one
`timing` field: twice in a row in one process, and again in a fresh process with
another hash seed (so no set or dict order leaks into the output)."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from circ.runtime.results.write import dumps
from conftest import build_tiny_model_dir, mcq_examples, write_jsonl

from circ.cli.run import run_spec

SPEC = '''
spec "determinism"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(EMBED + heads + mlps, on=clean, metric=ld)
analysis patched = patch(heads + mlps, source=corrupt, target=clean, metric=ld)
analysis resampled = patch(heads, source=resample(clean), target=clean, metric=ld)
analysis attn = attention(top(dla, 3), on=clean, query=last)
circuit top3 = top(patched, 3) where abs(effect) >= 0
categories top3 {
  strong = attends(labels) > 0.2 and dla > 0
  weak   = dla <= 0
}
expect dla.total > -1000
render top3 to "top3.dot"
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("determinism")
    build_tiny_model_dir(folder / "model")
    write_jsonl(folder / "data.jsonl", mcq_examples(8, seed=4))
    (folder / "spec.circ").write_text(SPEC)
    return folder


pytestmark = pytest.mark.usefixtures("one_thread")  # the fresh process sums floats in the same order


def run_here(folder, out):
    code = run_spec(str(folder / "spec.circ"), str(folder / out), model=None, device=None, batch_size=3,
                    seed=7, trust_remote_code=False, progress=False, stdout=io.StringIO(), stderr=io.StringIO())
    assert code == 0
    return (folder / out / "results.json").read_text()


def assert_identical_but_timing(first: str, second: str):
    one, two = json.loads(first), json.loads(second)
    assert {key for key in one.keys() | two.keys() if one.get(key) != two.get(key)} <= {"timing"}
    assert first == dumps(one) and second == dumps(two)  # each file is the canonical text of its content
    assert dumps({**two, "timing": one["timing"]}) == first


def test_two_runs_in_a_row_are_byte_identical_apart_from_timing(project):
    first = run_here(project, "one")
    second = run_here(project, "two")
    assert_identical_but_timing(first, second)
    timing = json.loads(first)["timing"]
    assert set(timing) == {"started", "seconds"} and timing["seconds"] >= 0
    results = json.loads(first)
    assert results["analyses"]["resampled"]["values"] and results["circuits"]["top3"]["nodes"]
    assert (project / "one" / "top3.dot").read_bytes() == (project / "two" / "top3.dot").read_bytes()


def test_a_fresh_process_with_another_hash_seed_gives_the_same_bytes(project):
    expected = run_here(project, "here")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    circ = Path(sys.executable).with_name("circ")
    finished = subprocess.run([str(circ), "run", str(project / "spec.circ"), "--out", str(project / "there"),
                               "--quiet", "--batch-size", "3", "--seed", "7"],
                              capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert_identical_but_timing(expected, (project / "there" / "results.json").read_text())
