"""`circ run --resume`: a run killed midway (SIGINT, SIGKILL) leaves its finished
analyses on disk, and resuming gives the results.json of an uninterrupted run while
skipping them. Store keys change exactly when what a result depends on changes."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from circ.compiler.api import compile_source, plan
from circ.runtime.execute.resume_store import CACHE_FOLDER, ResultStore, op_keys
from conftest import build_tiny_model_dir, mcq_examples, write_jsonl

from circ.cli.run import run_spec

CIRC = Path(sys.executable).with_name("circ")

# `a_first` is quick and finishes first (ops run in name order when free to); `b_slow`
# then patches ten nodes batch by batch, long enough to be killed in the middle.
SLOW_SPEC = '''
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis a_first = attribute(heads + mlps, on=clean, metric=ld)
analysis b_slow = patch(heads + mlps, source=corrupt, target=clean, metric=ld)
circuit top3 = top(b_slow, 3)
expect a_first.total > -1000
'''
BATCH = "2"


def make_project(folder, spec=SLOW_SPEC, n=12):
    build_tiny_model_dir(folder / "model")
    write_jsonl(folder / "data.jsonl", mcq_examples(n, seed=5))
    (folder / "spec.circ").write_text(spec)
    return folder / "spec.circ"


def run_here(spec_path, out, *, resume=False, batch_size=int(BATCH), seed=0):
    err = io.StringIO()
    code = run_spec(str(spec_path), str(out), model=None, device=None, batch_size=batch_size, seed=seed,
                    trust_remote_code=False, progress=False, resume=resume, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def cache_entries(out):
    folder = Path(out) / CACHE_FOLDER
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def without_timing(path):
    results = json.loads(Path(path).read_text())
    results.pop("timing")
    return results


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    spec = make_project(folder)
    code, _ = run_here(spec, folder / "uninterrupted")
    assert code == 0
    return spec


@pytest.fixture(scope="module")
def interrupted(project):
    """Both signals at once: start two runs, stop each as its first analysis is stored."""
    folder = project.parent
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for sig in (signal.SIGINT, signal.SIGKILL):
        out = folder / f"killed-{sig.name}"
        process = subprocess.Popen([str(CIRC), "run", str(project), "--out", str(out), "--quiet",
                                    "--batch-size", BATCH], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=env)
        runs[sig] = (process, out)
    stored_at_kill = {}
    deadline = time.monotonic() + 120
    while len(stored_at_kill) < len(runs) and time.monotonic() < deadline:
        for sig, (process, out) in runs.items():
            if sig not in stored_at_kill and cache_entries(out):
                process.send_signal(sig)
                stored_at_kill[sig] = len(cache_entries(out))
        time.sleep(0.01)
    finished = {}
    for sig, (process, out) in runs.items():
        if sig not in stored_at_kill:
            process.kill()
        _, stderr = process.communicate(timeout=60)
        finished[sig] = (process.returncode, stderr, out, stored_at_kill.get(sig))
    return finished


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_run_leaves_no_results_and_only_whole_cache_entries(interrupted, sig):
    code, stderr, out, stored = interrupted[sig]
    assert stored is not None, "the run never stored its first analysis"
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL), stderr
    assert "Traceback" not in stderr
    assert not (out / "results.json").exists()
    assert not list(out.glob("*.tmp"))
    for entry in cache_entries(out):
        record = json.loads(entry.read_text())
        assert record["key"] == entry.stem and record["op"].startswith("analysis:")
    assert [json.loads(e.read_text())["op"] for e in cache_entries(out)] == ["analysis:a_first"]
    if sig == signal.SIGINT:
        assert "interrupted; no results written" in stderr and "--resume" in stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_resume_gives_the_uninterrupted_results_and_skips_finished_work(project, interrupted, sig):
    _, _, out, _ = interrupted[sig]
    code, stderr = run_here(project, out, resume=True)
    assert code == 0, stderr
    assert "reused analysis:a_first" in stderr
    assert "reused analysis:b_slow" not in stderr
    assert "circ: reused 1 finished analyses" in stderr
    assert without_timing(out / "results.json") == without_timing(project.parent / "uninterrupted" / "results.json")
    assert len(cache_entries(out)) == 2


QUICK_SPEC = '''
model hf("model")
data clean = jsonl("data.jsonl", n=8)
metric ld = logit_diff(answer, wrong) at last
analysis a = attribute(heads, on=clean, metric=ld)
analysis b = attribute(mlps, on=clean, metric=ld)
expect a.total > -1000
'''


def test_resuming_a_finished_run_recomputes_only_what_changed(project, tmp_path):
    """Tighten an expectation and add an analysis: both old analyses are reused."""
    first, changed = project.parent / "quick.circ", project.parent / "changed.circ"
    first.write_text(QUICK_SPEC)
    changed.write_text(QUICK_SPEC.replace("> -1000", "> -999") +
                       "analysis c = attribute(heads + mlps, on=clean, metric=ld)\n")
    out = tmp_path / "out"
    assert run_here(first, out)[0] == 0
    code, stderr = run_here(changed, out, resume=True)
    assert code == 0, stderr
    assert "circ: reused 2 finished analyses" in stderr and "reused analysis:c" not in stderr
    assert run_here(changed, tmp_path / "fresh")[0] == 0
    assert without_timing(out / "results.json") == without_timing(tmp_path / "fresh" / "results.json")


# --------------------------------------------------------------------------- keys
KEY_SPEC = '''
model hf("{model}")
data clean = jsonl("{data}")
data gen = mcq(n=4, seed=1)
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads, on=clean, metric=ld)
analysis other = attribute(heads, on=gen, metric=ld)
analysis chosen = patch(top(dla, 2), source=corrupt, target=clean, metric=ld)
'''


@pytest.fixture(scope="module")
def key_project(tmp_path_factory, tiny_dir):
    folder = tmp_path_factory.mktemp("keys")
    write_jsonl(folder / "a.jsonl", mcq_examples(4, seed=1))
    write_jsonl(folder / "b.jsonl", mcq_examples(4, seed=2))
    (folder / "copy").mkdir()
    (folder / "copy" / "a.jsonl").write_bytes((folder / "a.jsonl").read_bytes())
    return folder


def keys_of(folder, loaded, tiny_dir, *, data="a.jsonl", text=KEY_SPEC, seed=0, batch_size=8):
    spec = compile_source(text.format(model=tiny_dir, data=data), str(folder / "spec.circ"))
    return op_keys(spec, plan(spec), loaded, seed=seed, batch_size=batch_size)


def test_keys_follow_what_a_result_depends_on(key_project, tiny, tiny_dir):
    base = keys_of(key_project, tiny, tiny_dir)
    same = keys_of(key_project, tiny, tiny_dir, data="copy/a.jsonl")
    assert same == base  # paths do not count, contents do
    edited = keys_of(key_project, tiny, tiny_dir, data="b.jsonl")
    assert edited["analysis:dla"] != base["analysis:dla"]
    assert edited["analysis:chosen"] != base["analysis:chosen"]  # through the nodes it selects
    assert edited["analysis:other"] == base["analysis:other"]
    for changed in (keys_of(key_project, tiny, tiny_dir, seed=1),
                    keys_of(key_project, tiny, tiny_dir, batch_size=4)):
        assert all(changed[op] != base[op] for op in base)
    relayout = KEY_SPEC.replace("metric=ld)\nanalysis other", "metric = ld )\nanalysis other")
    assert keys_of(key_project, tiny, tiny_dir, text=relayout) == base
    reworded = KEY_SPEC.replace("analysis dla = attribute(heads,", "analysis dla = attribute(heads + mlps,")
    widened = keys_of(key_project, tiny, tiny_dir, text=reworded)
    assert widened["analysis:dla"] != base["analysis:dla"]
    assert widened["analysis:other"] == base["analysis:other"]


def test_keys_change_with_one_weight_and_with_the_tokenizer(key_project, fresh_tiny, tiny, tiny_dir):
    base = keys_of(key_project, tiny, tiny_dir)
    with torch.no_grad():
        next(fresh_tiny.bridge.parameters()).view(-1)[7] += 1e-3
    assert keys_of(key_project, fresh_tiny, tiny_dir)["analysis:other"] != base["analysis:other"]
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(str(tiny_dir))
    other.add_tokens(["zebra"])
    assert keys_of(key_project, replace(tiny, tokenizer=other), tiny_dir)["model"] != base["model"]


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"key": "other", "value": {}}', b"[1, 2]",
                                     b"\x80\x81", b"[" * 100000])
def test_a_damaged_cache_entry_counts_as_missing(tmp_path, content):
    class Op:
        id, kind = "analysis:x", "analysis"

    store = ResultStore(tmp_path, {"analysis:x": "k1"}, reuse=True)
    (tmp_path / "k1.json").write_bytes(content)
    assert store.load(Op) is None
    store.save(Op, {"values": {"L0.H0": float("nan"), "L0.H1": 0.1}})
    loaded = store.load(Op)
    assert loaded["values"]["L0.H1"] == 0.1 and loaded["values"]["L0.H0"] != loaded["values"]["L0.H0"]
    assert store.reused == ["analysis:x"]


def test_without_resume_results_are_stored_but_never_read(tmp_path):
    class Op:
        id, kind = "analysis:x", "analysis"

    store = ResultStore(tmp_path, {"analysis:x": "k1"}, reuse=False)
    store.save(Op, {"total": 1.0})
    assert (tmp_path / "k1.json").is_file() and store.load(Op) is None
