"""Hostile input to the exchange and drawing surfaces, as a pull request run in CI
could bring it (docs/reliability.md): graph files for `import(...)` whose edge names
hide a line break, a 5,000-digit layer, non-ASCII digits or an edge the model does not
have; results files for `circ export` with such edges or a claimed model of 10**12
layers; `-o` through a link; node categories and prompt texts with NUL and
bidirectional characters in the diagram and the report. Each is a diagnostic or exit 2 with one line naming the problem, never a
traceback, never a write through a link, and what is drawn shows what the text holds."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from circ import api
from circ.cli.main import main
from circ.runtime.render.diagram import circuit_dot
from circ.runtime.render.report import report_html
from click.testing import CliRunner
from test_edge_circuit_diagram import results as edge_results

IMPORT_SPEC = 'spec "hostile"\nmodel demo\ncircuit x = import("graph.json")\n'


@pytest.mark.parametrize("edge", [
    "input\n->logits",  # a line break the old `$` let through, then int('None')
    "a0.h0->m0\n",
    "a" + "9" * 5000 + ".h0->logits",  # over Python's 4,300-digit int limit
    "a\u0661.h0->logits",  # ARABIC-INDIC DIGIT ONE, which int() reads as 1
    "m1->a0.h0<q>",  # backwards: layer 1 into layer 0
    "m0->m0",
    "a1.h0->a1.h1<q>",  # a head into a head of its own layer
    "m0->m0<q>",  # q into an MLP
    "a0.h0->a1.h0",  # into a head without its q, k or v
    "input->input",
    "logits->m0",
])
def test_an_imported_edge_the_model_does_not_have_is_e383(tmp_path, edge):
    (tmp_path / "graph.json").write_text(json.dumps({"edges": {edge: {"score": 1.0, "in_graph": True}}}))
    (tmp_path / "bad.circ").write_text(IMPORT_SPEC)
    with pytest.raises(api.CircError) as error:
        api.compile(tmp_path / "bad.circ")
    diagnostic = error.value.diagnostics[0]
    assert diagnostic.code == "E383" and "is no EAP-IG edge" in diagnostic.message
    assert len(diagnostic.message) < 200 + len(str(tmp_path))  # the name is cut
    outcome = CliRunner().invoke(main, ["check", str(tmp_path / "bad.circ")])
    assert outcome.exit_code == 1 and "Traceback" not in outcome.output


def test_every_edge_of_the_full_graph_imports(tmp_path):
    """The same check accepts what EAP-IG's Graph.from_model has, on the demo's shape."""
    from test_eap_exchange import full_graph_edges

    edges = {name: {"score": 0.0, "in_graph": True} for name in full_graph_edges(2, 4)}
    (tmp_path / "graph.json").write_text(json.dumps({"edges": edges}))
    (tmp_path / "all.circ").write_text(IMPORT_SPEC)
    circuit = api.compile(tmp_path / "all.circ").ir.circuits[0]
    assert len(circuit.edges) == len(edges) == 110


def _edges_results(values: dict) -> dict:
    return {"model": {"n_layers": 2, "n_heads": 4, "d_model": 8},
            "analyses": {"e": {"kind": "edges", "values": values}}, "circuits": {}}


@pytest.mark.parametrize("key", [
    "L1.H0->L0.H1.q",  # backwards
    "L0.MLP->L1.MLP.q",  # a part into an MLP
    "L0.H1->L1.H0.<script>",  # a part that is none
    "L0.H1->L1.H0",  # into a head without its part
    "L0.H1\n->LOGITS",
    "L" + "9" * 5000 + ".H0->LOGITS",
    "NaN", "Infinity",  # a score EAP-IG's json.load would read, but no JSON parser must
])
@pytest.mark.parametrize("fmt", ["eap-ig", "mib"])
def test_export_refuses_an_edge_the_model_does_not_have_or_a_score_not_finite(tmp_path, key, fmt):
    values = {"L0.MLP->LOGITS": float(key)} if key in ("NaN", "Infinity") else {key: 1.0}
    (tmp_path / "results.json").write_text(json.dumps(_edges_results({**values, "L1.MLP->LOGITS": 2.0})))
    extra = ["--task", "t", "--model", "m", "-o", str(tmp_path / "sub")] if fmt == "mib" else []
    outcome = CliRunner().invoke(main, ["export", str(tmp_path), "--format", fmt, *extra])
    assert outcome.exit_code == 2 and outcome.output.startswith("circ: "), outcome.output
    assert len(outcome.output.strip().splitlines()) == 1 and "Traceback" not in outcome.output
    assert not (tmp_path / "sub").exists()


@pytest.fixture
def exportable(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_edges_results({"L1.MLP->LOGITS": 2.0})))
    return tmp_path


def test_export_writes_no_file_through_a_link(exportable):
    victim = exportable / "victim.txt"
    victim.write_text("keep me")
    (exportable / "graph.json").symlink_to(victim)
    outcome = CliRunner().invoke(main, ["export", str(exportable), "--format", "eap-ig",
                                        "-o", str(exportable / "graph.json")])
    assert outcome.exit_code == 2 and "symbolic link" in outcome.output
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("fmt", ["eap-ig", "mib"])
def test_export_writes_nothing_into_a_linked_folder(exportable, fmt):
    (exportable / "elsewhere").mkdir()
    (exportable / "linked").symlink_to(exportable / "elsewhere")
    target = exportable / "linked" / ("graph.json" if fmt == "eap-ig" else "")
    extra = ["--task", "t", "--model", "m"] if fmt == "mib" else []
    outcome = CliRunner().invoke(main, ["export", str(exportable), "--format", fmt, *extra, "-o", str(target)])
    assert outcome.exit_code == 2 and "symbolic link" in outcome.output
    assert not any((exportable / "elsewhere").iterdir())


@pytest.mark.parametrize("flags, message", [
    (["--format", "eap-ig", "-o", ""], "is no file name"),
    (["--format", "eap-ig", "-o", "{tmp}"], "is a folder: --format eap-ig writes one file"),
    (["--format", "mib", "--task", "t", "--model", "m", "-o", ""], "names no folder"),
    (["--format", "mib", "--task", "x" * 5000, "--model", "m", "-o", "{tmp}/m"], "is no MIB name"),
    (["--format", "mib", "--task", "t\x1b[2J", "--model", "m", "-o", "{tmp}/m"], "is no MIB name"),
])
def test_export_says_in_one_short_line_what_is_wrong_with_o_or_a_name(exportable, flags, message):
    outcome = CliRunner().invoke(main, ["export", str(exportable), *[f.format(tmp=exportable) for f in flags]])
    assert outcome.exit_code == 2 and message in outcome.output, outcome.output
    assert len(outcome.output) < 300 and "\x1b" not in outcome.output and "Traceback" not in outcome.output
    assert not (exportable / "m").exists()


def test_export_into_an_existing_file_replaces_it_whole(exportable):
    (exportable / "graph.json").write_text("x" * 100_000)
    outcome = CliRunner().invoke(main, ["export", str(exportable), "--format", "eap-ig",
                                        "-o", str(exportable / "graph.json")])
    assert outcome.exit_code == 0, outcome.output
    assert json.loads((exportable / "graph.json").read_text())["edges"] == {
        "m1->logits": {"score": 2.0, "in_graph": False}}


HIDDEN = "a\x00b\u202ec\x1b[31m"


def test_hidden_characters_in_a_category_are_drawn_as_escapes():
    body = edge_results()
    body["circuits"]["found"]["nodes"][0]["category"] = HIDDEN
    dot = circuit_dot(body, "found")
    assert "\x00" not in dot and "\u202e" not in dot and "\x1b" not in dot
    assert "a\\\\x00b\\\\u202ec\\\\x1b[31m" in dot  # DOT's own backslash doubled
    if shutil.which("dot"):
        drawn = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=60)
        assert drawn.returncode == 0, drawn.stderr
        assert "a\\x00b\\u202ec\\x1b[31m" in drawn.stdout


def test_hidden_characters_in_the_reports_tables_are_shown_as_escapes():
    body = edge_results()
    body["circuits"]["found"]["nodes"][0]["category"] = HIDDEN
    body["circuits"]["found"]["edges"][0]["part"] = HIDDEN
    page = report_html(body, 'spec "s"  # \u202e a comment that reads backwards\n', diagram_svg=None)
    assert "\x00" not in page and "\u202e" not in page and "\x1b" not in page
    assert page.count("a\\x00b\\u202ec\\x1b[31m") == 2 and "# \\u202e a comment" in page


def test_hidden_characters_in_a_prompt_are_shown_as_escapes_and_lines_kept():
    results = {"spec": {"name": "s"}, "model": {"name": "demo"}, "datasets": {"clean": {"n": 2}},
               "analyses": {"dla": {"kind": "attribute", "dataset": "clean", "values": {"L0.H0": 0.5}}},
               "circuits": {}}
    text = "line one\n" + HIDDEN + "</pre></svg><script>alert(1)</script>"
    page = report_html(results, "", diagram_svg=None, per_prompt={"dla": {"L0.H0": [1.0, -1.0]}},
                       prompts={"clean": ["fine", text]})
    assert "line one\na\\x00b\\u202ec\\x1b[31m&lt;/pre&gt;&lt;/svg&gt;&lt;script&gt;" in page
    assert "\x00" not in page and "\u202e" not in page and "<script>alert(1)" not in page


def test_a_claimed_model_of_10_to_the_12_layers_costs_no_time(tmp_path):
    """The edge budgets count the claimed model's edges in closed form, not by layer."""
    import time

    from circ.compiler.mib_layout import model_edge_count

    body = _edges_results({"L1.MLP->LOGITS": 2.0})
    body["model"].update(n_layers=10**12, n_heads=10**12)
    (tmp_path / "results.json").write_text(json.dumps(body))
    started = time.monotonic()
    outcome = CliRunner().invoke(main, ["export", str(tmp_path), "--format", "mib", "--task", "t", "--model", "m",
                                        "--by-budget", "-o", str(tmp_path / "sub")])
    assert outcome.exit_code == 0 and time.monotonic() - started < 5, outcome.output
    assert model_edge_count(12, 12) == 32_491 and model_edge_count(2, 4) == 110  # GPT-2 small, the demo model


def test_a_missing_name_among_many_long_ones_is_one_short_line(tmp_path):
    body = _edges_results({"L1.MLP->LOGITS": 2.0})
    body["circuits"] = {f"c{index}" + "x" * 1000: {"edges": []} for index in range(10_000)}
    (tmp_path / "results.json").write_text(json.dumps(body))
    for flag in ("--circuit", "--analysis"):
        outcome = CliRunner().invoke(main, ["export", str(tmp_path), "--format", "eap-ig", flag, "y" * 10_000])
        assert outcome.exit_code == 2 and "no " in outcome.output and len(outcome.output) < 2_500, outcome.output[:300]
