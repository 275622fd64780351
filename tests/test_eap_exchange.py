"""Exchange with EAP-IG: `circ export --format eap-ig` writes EAP-IG's graph JSON from
an edges analysis and a circuit; `circuit x = import("graph.json")` reads its in_graph
edges back. Round trip: the same nodes and edges."""
import json

import pytest
from click.testing import CliRunner

from circ import api
from circ.cli.main import main

SPEC = '''spec "exchange"
model demo
data clean = mcq(n=8, seed=0)
data moved = clean.move_answer(seed=3)
metric ld = logit_diff(answer, wrong) at last
analysis e = edges(heads + mlps + embed, source=moved, target=clean, metric=ld)
circuit found = discover(e, top=6)
'''


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exchange")
    (folder / "spec.circ").write_text(SPEC)
    results = api.run(folder / "spec.circ", progress=False, out=folder / "out")
    outcome = CliRunner().invoke(main, ["export", str(folder / "out"), "--format", "eap-ig",
                                        "-o", str(folder / "graph.json")])
    assert outcome.exit_code == 0, outcome.output
    return folder, results.data, json.loads((folder / "graph.json").read_text())


def test_export_names_and_scores(exported):
    _, results, graph = exported
    values = results["analyses"]["e"]["values"]
    assert len(graph["edges"]) == len(values)
    assert graph["edges"]["a0.h0->a1.h0<q>"]["score"] == pytest.approx(values["L0.H0->L1.H0.q"])
    assert graph["edges"]["input->m0"]["score"] == pytest.approx(values["EMBED->L0.MLP"])
    assert graph["edges"]["m1->logits"]["score"] == pytest.approx(values["L1.MLP->LOGITS"])
    assert sum(e["in_graph"] for e in graph["edges"].values()) == 6
    assert graph["cfg"]["n_layers"] == results["model"]["n_layers"]
    in_graph_nodes = {name for name, kept in graph["nodes"].items() if kept}
    assert "logits" in graph["nodes"] and "input" in graph["nodes"]
    assert in_graph_nodes <= set(graph["nodes"])


def test_round_trip(exported):
    folder, results, _ = exported
    (folder / "back.circ").write_text('spec "back"\nmodel demo\ncircuit x = import("graph.json")\n')
    circuit = api.compile(folder / "back.circ").ir.circuits[0]
    found = results["circuits"]["found"]
    assert [n.id for n in circuit.nodes.nodes] == [n["id"] for n in found["nodes"]]
    assert set(circuit.edges) == {(e["src"], e["dst"], e["part"]) for e in found["edges"]}
    back = api.run(folder / "back.circ", progress=False)
    assert {(e["src"], e["dst"], e["part"]) for e in back.data["circuits"]["x"]["edges"]} == set(circuit.edges)


@pytest.mark.parametrize("content, code", [
    (None, "E382"),
    ("not json", "E382"),
    ('{"nodes": {}}', "E383"),
    ('{"edges": {"a0.h0=>a1.h0": {"score": 1, "in_graph": true}}}', "E383"),
    ('{"edges": {"a0.h0->a9.h0<q>": {"score": 1, "in_graph": true}}}', "E384"),
    ('{"edges": {"a0.h9->logits": {"score": 1, "in_graph": true}}}', "E384"),
])
def test_bad_graphs(tmp_path, content, code):
    if content is not None:
        (tmp_path / "graph.json").write_text(content)
    (tmp_path / "bad.circ").write_text('spec "bad"\nmodel demo\ncircuit x = import("graph.json")\n')
    with pytest.raises(api.CircError) as error:
        api.compile(tmp_path / "bad.circ")
    assert code in str(error.value.diagnostics[0])


def test_export_without_edges_analysis_says_so(tmp_path):
    (tmp_path / "results.json").write_text('{"analyses": {}, "circuits": {}}')
    outcome = CliRunner().invoke(main, ["export", str(tmp_path), "--format", "eap-ig"])
    assert outcome.exit_code == 2 and "no edges analysis" in outcome.output
