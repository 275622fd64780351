"""Exchange with EAP-IG and MIB: `circ export --format eap-ig` writes EAP-IG's graph JSON
from an edges analysis and a circuit, `--format mib` MIB's submission folder;
`circuit x = import("graph.json")` reads in_graph edges back. Round trip: the same
nodes and edges."""
import json
import re

import pytest
from click.testing import CliRunner

from circ import api
from circ.cli.main import main
from circ.compiler.mib_layout import MIB_PERCENTAGES, model_edge_count
from circ.runtime.render.diagram import circuit_dot
from test_edge_circuit_diagram import edges_drawn

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
    assert "logits" in graph["nodes"] and "input" in graph["nodes"]
    assert all(set(entry) == {"in_graph"} for entry in graph["nodes"].values())  # as EAP-IG's to_json
    in_graph_nodes = {name for name, entry in graph["nodes"].items() if entry["in_graph"]}
    ends = set()
    for name, entry in graph["edges"].items():
        if entry["in_graph"]:
            parent, child = name.split("<")[0].split("->")
            ends |= {parent, child}
    assert in_graph_nodes == ends


def test_round_trip(exported):
    folder, results, _ = exported
    (folder / "back.circ").write_text('spec "back"\nmodel demo\ncircuit x = import("graph.json")\n')
    circuit = api.compile(folder / "back.circ").ir.circuits[0]
    found = results["circuits"]["found"]
    assert [n.id for n in circuit.nodes.nodes] == [n["id"] for n in found["nodes"]]
    assert set(circuit.edges) == {(e["src"], e["dst"], e["part"]) for e in found["edges"]}
    back = api.run(folder / "back.circ", progress=False)
    assert {(e["src"], e["dst"], e["part"]) for e in back.data["circuits"]["x"]["edges"]} == set(circuit.edges)
    assert back.data["circuits"]["x"]["granularity"] == "edge"
    assert set(edges_drawn(circuit_dot(back.data, "x"))) == set(circuit.edges)


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


def _export(*args):
    return CliRunner().invoke(main, ["export", *map(str, args)])


def test_mib_importances_are_the_eap_ig_graph(exported):
    folder, results, graph = exported
    outcome = _export(folder / "out", "--format", "mib", "--task", "mcqa", "--model", "demo", "-o", folder / "mib")
    assert outcome.exit_code == 0, outcome.output
    assert [p.relative_to(folder / "mib").as_posix() for p in (folder / "mib").rglob("*.json")] == \
        ["mcqa_demo/importances.json"]
    assert json.loads((folder / "mib/mcqa_demo/importances.json").read_text()) == graph
    (folder / "mib.circ").write_text('spec "mib"\nmodel demo\ncircuit x = import("mib/mcqa_demo/importances.json")\n')
    circuit = api.compile(folder / "mib.circ").ir.circuits[0]
    assert set(circuit.edges) == {(e["src"], e["dst"], e["part"]) for e in results["circuits"]["found"]["edges"]}


def full_graph_edges(n_layers: int, n_heads: int) -> set[str]:
    """Every edge name of EAP-IG's `Graph.from_model` for a model with sequential
    attention and MLP, built the way it walks the residual stream."""
    names, stream = set(), ["input"]
    for layer in range(n_layers):
        heads = [f"a{layer}.h{head}" for head in range(n_heads)]
        names |= {f"{parent}->{head}<{part}>" for parent in stream for head in heads for part in "qkv"}
        stream += heads
        names |= {f"{parent}->m{layer}" for parent in stream}
        stream.append(f"m{layer}")
    return names | {f"{parent}->logits" for parent in stream}


def test_export_names_every_edge_of_eap_igs_full_graph(exported):
    _, results, graph = exported
    assert set(graph["edges"]) == full_graph_edges(results["model"]["n_layers"], results["model"]["n_heads"])


def test_model_edge_count_is_every_edge_of_the_full_graph(exported):
    _, results, _ = exported
    model = results["model"]
    assert len(results["analyses"]["e"]["values"]) == model_edge_count(model["n_layers"], model["n_heads"])
    assert model_edge_count(12, 12) == len(full_graph_edges(12, 12)) == 32334 + 157  # 157 into the logits


def test_mib_by_budget_keeps_the_strongest_share_of_edges(exported):
    folder, results, _ = exported
    outcome = _export(folder / "out", "--format", "mib", "--task", "mcqa", "--model", "demo", "--by-budget",
                      "-o", folder / "budget")
    assert outcome.exit_code == 0, outcome.output
    names = sorted(p.name for p in (folder / "budget/mcqa_demo").iterdir())
    assert names == sorted(f"edges_{p}pct.json" for p in MIB_PERCENTAGES)
    values = results["analyses"]["e"]["values"]
    total = len(values)
    for percent in MIB_PERCENTAGES:
        graph = json.loads((folder / f"budget/mcqa_demo/edges_{percent}pct.json").read_text())
        kept = [e["score"] for e in graph["edges"].values() if e["in_graph"]]
        dropped = [e["score"] for e in graph["edges"].values() if not e["in_graph"]]
        assert len(kept) == int(float(percent) * total / 100 + 1e-9)
        assert not kept or min(map(abs, kept)) >= max(map(abs, dropped))
    (folder / "half.circ").write_text('spec "half"\nmodel demo\ncircuit x = import("budget/mcqa_demo/edges_50pct.json")\n')
    circuit = api.compile(folder / "half.circ").ir.circuits[0]
    strongest = sorted(values, key=lambda k: -abs(values[k]))[:total // 2]
    expected = set()
    for key in strongest:
        src, dst = key.split("->")
        expected.add((src, *(dst.rsplit(".", 1) if dst.count(".") == 2 else (dst, None))))
    assert set(circuit.edges) == expected


@pytest.mark.parametrize("flags, message", [
    (["--format", "mib", "--model", "demo", "-o", "{tmp}/m"], "needs --task"),
    (["--format", "mib", "--task", "mcqa", "-o", "{tmp}/m"], "needs --model"),
    (["--format", "mib", "--task", "../x", "--model", "demo", "-o", "{tmp}/m"], "is no MIB name"),
    (["--format", "mib", "--task", "arc_easy", "--model", "demo", "-o", "{tmp}/m"], "arc-easy"),
    (["--format", "mib", "--task", "mcqa", "--model", "demo"], "-o FOLDER"),
    (["--format", "eap-ig", "--task", "mcqa"], "go with --format mib"),
    (["--format", "mib", "--task", "mcqa", "--model", "demo", "-o", "{tmp}/file.txt"], "cannot write"),
])
def test_mib_bad_flags_exit_2(exported, tmp_path, flags, message):
    folder = exported[0]
    (tmp_path / "file.txt").write_text("a file, not a folder")
    outcome = _export(folder / "out", *[f.format(tmp=tmp_path) for f in flags])
    assert outcome.exit_code == 2 and message in outcome.output, outcome.output
    assert "Traceback" not in outcome.output


@pytest.mark.parametrize("results", [
    {"analyses": {"e": {"kind": "edges", "values": {"L0.H0": 1.0}}}, "circuits": {}},
    {"analyses": {"e": {"kind": "edges", "values": {"L0.H0->L9.X": 1.0}}}, "circuits": {}},
    {"analyses": {"e": {"kind": "edges", "values": {"EMBED->L0.MLP": "big"}}}, "circuits": {}},
    {"analyses": {"e": {"kind": "edges", "values": {"EMBED->L0.MLP": 1.0}}}, "circuits": {"c": {"edges": [{}]}}},
    {"analyses": {"e": {"kind": "edges", "values": {"EMBED->L0.MLP": 1.0}}}, "circuits": [], "model": "demo"},
])
@pytest.mark.parametrize("fmt", ["eap-ig", "mib"])
def test_malformed_results_exit_2(tmp_path, results, fmt):
    (tmp_path / "results.json").write_text(json.dumps(results))
    extra = ["--task", "t", "--model", "m", "-o", str(tmp_path / "sub")] if fmt == "mib" else []
    outcome = _export(tmp_path, "--format", fmt, *extra)
    assert outcome.exit_code == 2 and outcome.output.startswith("circ: "), outcome.output
    assert "Traceback" not in outcome.output


def test_discovered_circuit_is_drawn_by_its_kept_edges(exported):
    _, results, _ = exported
    found = results["circuits"]["found"]
    assert found["granularity"] == "edge" and len(found["edges"]) == 6
    assert set(edges_drawn(circuit_dot(results, "found"))) == {(e["src"], e["dst"], e["part"]) for e in found["edges"]}


def _page_commands() -> list[list[str]]:
    """The `circ export` commands of docs/exchange.md, split into words."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "exchange.md").read_text(encoding="utf-8")
    lines = re.findall(r"^circ export .*$", "\n".join(re.findall(r"```\n(.*?)```", text, flags=re.S)), flags=re.M)
    return [line.split()[2:] for line in lines]


@pytest.mark.parametrize("optional", [False, True], ids=["flags left out", "every flag"])
def test_every_export_command_of_the_exchange_page_runs(exported, tmp_path, monkeypatch, optional):
    """Each command as written, `out/` being a run of SPEC (edges analysis e, circuit
    found), its [optional] flags all left out or all given; the files it names appear."""
    folder = exported[0]
    commands = _page_commands()
    assert len(commands) == 2
    monkeypatch.chdir(tmp_path)
    for words in commands:
        text = " ".join(words).replace("out/", f"{folder / 'out'}/")
        text = re.sub(r"\[([^\]]*)\]", (lambda m: m.group(1)) if optional else "", text)
        outcome = CliRunner().invoke(main, ["export", *text.split()])
        assert outcome.exit_code == 0, (text, outcome.output)
    assert json.loads((tmp_path / "graph.json").read_text())["edges"]
    written = sorted(p.name for p in (tmp_path / "submission" / "mcqa_gpt2").iterdir())
    assert written == (sorted(f"edges_{p}pct.json" for p in MIB_PERCENTAGES) if optional else ["importances.json"])
