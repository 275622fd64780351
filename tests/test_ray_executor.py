"""The Ray executor on a local Ray instance: the same results.json as the local
executor, a worker that dies midway loses nothing, and the helpers that split and
merge a sweep."""
import io
import json
from pathlib import Path

import pytest
from circ.compiler import ir
from circ.runtime.execute.ray_executor import chunked, distributable, merge_entries, merge_measured
from conftest import build_tiny_model_dir, mcq_examples, write_jsonl
from planted_model import PLANTED, build_planted_model_dir, marker_records

SPEC = '''
spec "sweep"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads + mlps, on=clean, metric=ld)
analysis total = patch(EMBED + heads + mlps, source=corrupt, target=clean, metric=ld)
analysis direct = patch(heads + mlps, source=mean(clean), target=clean, metric=ld, effect=direct)
circuit top3 = top(total, 3)
expect faithfulness(top3, on=clean, ablate=mean(clean), metric=ld) >= -1000
'''

PATHS = '''
spec "paths"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis paths = path_patch(EMBED + heads + mlps, to=[L1.H0.q, L1.H1.k, L1.H2.v, L1.H3, L1.MLP],
                            source=corrupt, target=clean, metric=ld)
'''


def test_chunks_keep_order_and_cover_every_node():
    assert chunked(list(range(10)), 4) == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert chunked([1, 2], 8) == [[1], [2]]


def test_merge_joins_per_node_tables_and_keeps_shared_fields():
    a = {"kind": "patch", "values": {"L0.H0": 1.0}, "baseline": {"clean": 2.0, "patched_source": None}}
    b = {"kind": "patch", "values": {"L0.H1": -1.0}, "baseline": {"clean": 2.0 + 1e-9, "patched_source": None}}
    assert merge_entries([a, b]) == {"kind": "patch", "values": {"L0.H0": 1.0, "L0.H1": -1.0},
                                     "baseline": {"clean": 2.0, "patched_source": None}}
    with pytest.raises(ValueError, match="disagree on 'kind'"):
        merge_entries([a, {**b, "kind": "other"}])


def test_merged_measurements_join_the_circuits_in_chunk_order():
    a = {"faithfulness": [0.0, 0.5], "stderr": [None, 0.1], "clean": 2.0, "all_ablated": 1.0}
    b = {"faithfulness": [1.0], "stderr": [0.2], "clean": 2.0, "all_ablated": 1.0}
    assert merge_measured([a, b]) == {"faithfulness": [0.0, 0.5, 1.0], "stderr": [None, 0.1, 0.2],
                                      "clean": 2.0, "all_ablated": 1.0}
    with pytest.raises(ValueError, match="disagree on 'clean'"):
        merge_measured([a, {**b, "clean": 3.0}])


def test_only_exact_patching_path_patching_and_exact_edges_are_spread():
    nodes = ir.NodeList(())
    assert distributable(ir.Analysis("e", "edges", nodes, "clean", options=(("method", "exact"),)))
    assert not distributable(ir.Analysis("e", "edges", nodes, "clean", options=(("method", "acdc"),)))
    assert not distributable(ir.Analysis("e", "edges", nodes, "clean", options=(("method", "eap"),)))
    assert distributable(ir.Analysis("p", "patch", nodes, "clean"))
    assert distributable(ir.Analysis("pp", "path_patch", nodes, "clean", receivers=nodes))
    assert not distributable(ir.Analysis("p", "patch", nodes, "clean", options=(("method", "attribution"),)))
    assert not distributable(ir.Analysis("d", "attribute", nodes, "clean"))


# --------------------------------------------------------------------------- on a local Ray instance
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A spec folder, its results from the local executor, and a local Ray instance."""
    ray = pytest.importorskip("ray")
    from circ.cli.run import run_spec

    folder = tmp_path_factory.mktemp("ray")
    build_tiny_model_dir(folder / "model")
    write_jsonl(folder / "data.jsonl", mcq_examples(8, seed=2))
    (folder / "sweep.circ").write_text(SPEC)
    assert run_spec(str(folder / "sweep.circ"), str(folder / "local"), model=None, device=None, batch_size=3,
                    seed=0, trust_remote_code=False, progress=False) == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield folder, json.loads((folder / "local" / "results.json").read_text())
    ray.shutdown()
    assert not ray.is_initialized()


def _close(a, b, path="") -> list[str]:
    """Where two JSON documents differ (numbers beyond 1e-6)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return [] if abs(a - b) <= 1e-6 else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_ray_run_writes_the_local_results(cluster):
    from circ.cli.run import run_spec

    folder, local = cluster
    code = run_spec(str(folder / "sweep.circ"), str(folder / "ray"), model=None, device=None, batch_size=3, seed=0,
                    trust_remote_code=False, progress=False, executor="ray")
    assert code == 0
    distributed = json.loads((folder / "ray" / "results.json").read_text())
    local, distributed = dict(local), dict(distributed)
    local.pop("timing"), distributed.pop("timing")
    assert _close(local, distributed) == []
    import ray

    assert ray.is_initialized()  # a cluster the caller started is left running


def test_a_worker_killed_midway_loses_nothing(cluster):
    from circ.compiler.api import compile_file, plan
    from circ.runtime.execute.executor import Settings
    from circ.runtime.execute.ray_executor import RayExecutor
    from circ.runtime.models.loading import load_model

    folder, local = cluster
    spec = compile_file(folder / "sweep.circ")
    loaded = load_model(spec.model, spec_dir=folder)
    executor = RayExecutor(spec, plan(spec), loaded, Settings(batch_size=3, show_progress=False), {},
                           workers=1, crash_first_worker=True)
    executor.run()
    assert executor.started_actors == 2  # the first died on its first chunk; a fresh one took over
    for name in ("total", "direct"):
        assert _close(local["analyses"][name]["values"], executor.analyses[name]["values"]) == []


def test_path_patching_is_spread_over_the_workers(cluster):
    """Senders (with an edge; L1.MLP has none) in chunks on the actors; receivers: q, k, v
    inputs, a whole head and an MLP. results.json is the local one, edges in the same order."""
    from circ.cli.run import run_spec

    folder, _ = cluster
    (folder / "paths.circ").write_text(PATHS)
    results, log = {}, io.StringIO()
    for executor in ("local", "ray"):
        code = run_spec(str(folder / "paths.circ"), str(folder / f"paths-{executor}"), model=None, device=None,
                        batch_size=3, seed=0, trust_remote_code=False, progress=executor == "ray", executor=executor,
                        stderr=log)
        assert code == 0, log.getvalue()
        results[executor] = json.loads((folder / f"paths-{executor}" / "results.json").read_text())
        results[executor].pop("timing")
    assert "paths: 10 nodes in 8 chunks on 2 Ray workers" in log.getvalue()
    local, distributed = results["local"]["analyses"]["paths"], results["ray"]["analyses"]["paths"]
    assert len(local["values"]) == 34 and list(distributed["values"]) == list(local["values"])
    assert _close(results["local"], results["ray"]) == []


def test_address_needs_the_ray_executor():
    from click.testing import CliRunner

    from circ.cli.main import main

    spec = str(Path(__file__).resolve().parent.parent / "specs" / "mcq_correct_letter.circ")
    result = CliRunner().invoke(main, ["run", spec, "--address", "auto"])
    assert result.exit_code == 2 and "--address goes with --executor ray" in result.output


EXACT_EDGES = '''
spec "exact-edges"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis exact = edges(heads + mlps + embed, source=corrupt, target=clean, metric=ld, method=exact)
circuit strongest = discover(exact, top=5)
'''


def test_exact_edge_scores_are_spread_over_the_workers(cluster):
    """Senders along the residual stream in chunks, each chunk's edges scored in the
    whole graph: the same results.json as the local executor, edges in the same order."""
    from circ.cli.run import run_spec

    folder, _ = cluster
    (folder / "exact.circ").write_text(EXACT_EDGES)
    results, log = {}, io.StringIO()
    for executor in ("local", "ray"):
        code = run_spec(str(folder / "exact.circ"), str(folder / f"exact-{executor}"), model=None, device=None,
                        batch_size=3, seed=0, trust_remote_code=False, progress=executor == "ray", executor=executor,
                        stderr=log)
        assert code == 0, log.getvalue()
        results[executor] = json.loads((folder / f"exact-{executor}" / "results.json").read_text())
        results[executor].pop("timing")
    assert "exact: 11 nodes in 8 chunks on 2 Ray workers" in log.getvalue()
    local, distributed = results["local"]["analyses"]["exact"], results["ray"]["analyses"]["exact"]
    assert len(local["values"]) == 110 and list(distributed["values"]) == list(local["values"])
    assert _close(results["local"], results["ray"]) == []


DISCOVERY = '''
spec "discovery"
model demo
data clean = mcq(n=8, labels="ABCD", seed=0)
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads + mlps, on=clean, metric=ld)
analysis e = edges(heads + mlps + embed, source=mean(clean), target=clean, metric=ld)
analysis node_curve = curve(dla, on=clean, metric=ld, points=5, random=2)
analysis edge_curve = curve(e, on=clean, metric=ld, points=5, random=3, seed=1)
circuit grown = discover(dla, faithfulness=0.9)
circuit grown_edges = discover(e, faithfulness=0.9)
'''


def test_curves_and_growth_are_measured_on_the_workers(cluster):
    """Each curve's points and each growth's doubling sizes in chunks on the actors: the
    local results.json, float for float, at node and edge level, on the demo model (the
    rankings, attribution and EAP, run on the driver)."""
    from circ.cli.run import run_spec

    folder, _ = cluster
    (folder / "discovery.circ").write_text(DISCOVERY)
    results, log = {}, io.StringIO()
    for executor in ("local", "ray"):
        code = run_spec(str(folder / "discovery.circ"), str(folder / f"discovery-{executor}"), model=None,
                        device=None, batch_size=3, seed=0, trust_remote_code=False, progress=executor == "ray",
                        executor=executor, stderr=log)
        assert code == 0, log.getvalue()
        results[executor] = json.loads((folder / f"discovery-{executor}" / "results.json").read_text())
        results[executor].pop("timing")
    shown = log.getvalue()
    assert "curve along dla: 18 circuits in 8 chunks on 2 Ray workers" in shown  # 6 sizes, 3 orders
    assert "curve along e: 24 circuits in 8 chunks on 2 Ray workers" in shown  # 6 sizes, 4 orders
    assert "discover along dla: 5 circuits in 5 chunks on 2 Ray workers" in shown  # sizes 1, 2, 4, 8, 10
    assert results["ray"] == results["local"]
    assert results["local"]["analyses"]["edge_curve"]["random"]["orders"] == 3


PLANTED_SPEC = '''
spec "planted-discovery"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis p = patch(heads + mlps, source=corrupt, target=clean, metric=ld, method=attribution)
analysis e = edges(heads + mlps + embed, source=corrupt, target=clean, metric=ld)
analysis fc = curve(p, on=clean, ablate=corrupt, metric=ld, points=10, random=4)
analysis edge_curve = curve(e, on=clean, ablate=corrupt, metric=ld, points=10, random=4)
circuit found = discover(p, faithfulness=0.9)
circuit found_edges = discover(e, faithfulness=0.9)
'''


@pytest.fixture(scope="module")
def planted(cluster):
    """The planted circuit's spec folder and its results from the local executor."""
    from circ.cli.run import run_spec

    folder = cluster[0] / "planted"
    build_planted_model_dir(folder / "model")
    (folder / "data.jsonl").write_text("".join(json.dumps(record) + "\n" for record in marker_records(16, seed=1)))
    (folder / "spec.circ").write_text(PLANTED_SPEC)
    assert run_spec(str(folder / "spec.circ"), str(folder / "local"), model=None, device=None, batch_size=8,
                    seed=0, trust_remote_code=False, progress=False) == 0
    local = json.loads((folder / "local" / "results.json").read_text())
    local.pop("timing")
    return folder, local


def test_the_planted_circuit_is_found_alike_on_the_workers(planted):
    """Curves and growth at node and edge level on the planted model: results.json equal
    to the local one, and growth keeps the planted heads on both."""
    from circ.cli.run import run_spec

    folder, local = planted
    assert run_spec(str(folder / "spec.circ"), str(folder / "ray"), model=None, device=None, batch_size=8, seed=0,
                    trust_remote_code=False, progress=False, executor="ray") == 0
    distributed = json.loads((folder / "ray" / "results.json").read_text())
    distributed.pop("timing")
    assert distributed == local
    assert {n["id"] for n in local["circuits"]["found"]["nodes"]} == set(PLANTED)
    assert local["analyses"]["fc"]["size_at_target"] == 2


def test_a_worker_killed_midway_loses_no_point_of_a_curve(planted):
    from circ.compiler.api import compile_file, plan
    from circ.runtime.execute.executor import Settings
    from circ.runtime.execute.ray_executor import RayExecutor
    from circ.runtime.models.loading import load_model

    folder, local = planted
    spec = compile_file(folder / "spec.circ")
    executor = RayExecutor(spec, plan(spec), load_model(spec.model, spec_dir=folder),
                           Settings(batch_size=8, show_progress=False), {}, workers=1, crash_first_worker=True)
    executor.run()
    assert executor.started_actors == 2  # the first died on its first chunk; a fresh one took over
    for name in ("fc", "edge_curve"):
        assert json.loads(json.dumps(executor.analyses[name])) == local["analyses"][name]
