"""Rendering DOT with the `dot` binary: formats by suffix, the layout Graphviz actually
computes (read back with -Tplain), and the message when Graphviz is missing."""
from __future__ import annotations

import json
import shlex
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from circ.runtime.render.diagram import RenderError, circuit_dot
from circ.runtime.render.graphviz import (
    GraphvizFailed,
    GraphvizMissing,
    inline_svg,
    render,
)

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "mcq_2l4h.json"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's `dot` is not installed")


@pytest.fixture
def results():
    return json.loads(FIXTURE.read_text())


def positions(dot_text: str) -> dict[str, float]:
    """Node name -> y centre (points, up is larger) as laid out by `dot -Tplain`."""
    plain = subprocess.run(["dot", "-Tplain"], input=dot_text, capture_output=True, text=True,
                           check=True).stdout
    ys = {}
    for line in plain.splitlines():
        fields = shlex.split(line)
        if fields and fields[0] == "node":
            ys[fields[1]] = float(fields[3])
    return ys


@needs_dot
def test_layout_puts_layers_between_embed_and_logits(results):
    ys = positions(circuit_dot(results))
    assert ys["EMBED"] < ys["L0.H3"] == ys["L0.H1"] == ys["L0.MLP"]
    assert ys["L0.H3"] < ys["L1.H2"] == ys["L1.H0"] == ys["L1.H3"] == ys["L1.MLP"]
    assert ys["L1.H2"] < ys["LOGITS"]


@needs_dot
def test_svg_has_every_node_and_edge(tmp_path, results):
    out = render(circuit_dot(results), tmp_path / "circuit.svg")
    assert out == tmp_path / "circuit.svg"
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    titles = {t.text for t in root.iter("{http://www.w3.org/2000/svg}title")}
    circuit = results["circuits"]["output"]
    assert {n["id"] for n in circuit["nodes"]} <= titles
    assert {f"{e['src']}->{e['dst']}" for e in circuit["edges"]} <= titles
    assert {f"{n['id']}->LOGITS" for n in circuit["nodes"] if n["id"] != "L0.H3"} <= titles  # L0.H3: via L1.H2


@needs_dot
def test_png_is_a_real_image(tmp_path, results):
    out = render(circuit_dot(results), tmp_path / "sub" / "circuit.PNG")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 300 and height > 300


@needs_dot
def test_pdf_is_a_real_document(tmp_path, results):
    data = render(circuit_dot(results), tmp_path / "circuit.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")


@needs_dot
def test_circ_render_writes_a_pdf(tmp_path):
    from click.testing import CliRunner

    from circ.cli.main import main

    out = tmp_path / "hypothesis.pdf"
    spec = Path(__file__).parent.parent / "specs" / "mcq_correct_letter.circ"
    done = CliRunner().invoke(main, ["render", str(spec), "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert out.read_bytes().startswith(b"%PDF-")


def test_dot_suffix_writes_the_text(tmp_path, results):
    text = circuit_dot(results)
    assert render(text, tmp_path / "c.dot").read_text() == text


@needs_dot
def test_escaped_text_survives_graphviz(tmp_path, results):
    results["spec"]["name"] = '<b>"quoted" & \\slash'
    results["circuits"]["output"]["nodes"][0]["category"] = 'say "hi" \\ bye'
    svg = inline_svg(circuit_dot(results))
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any('<b>"quoted" & \\slash' in t for t in texts)
    assert 'say "hi" \\ bye' in texts


@needs_dot
def test_inline_svg_has_no_prolog(results):
    svg = inline_svg(circuit_dot(results))
    assert svg.startswith("<svg") and "<?xml" not in svg and "<!DOCTYPE" not in svg


def test_missing_graphviz_writes_dot_and_says_how_to_install(tmp_path, monkeypatch, results):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    text = circuit_dot(results)
    with pytest.raises(GraphvizMissing) as error:
        render(text, tmp_path / "out" / "circuit.svg")
    message = str(error.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert str(tmp_path / "out" / "circuit.dot") in message
    assert (tmp_path / "out" / "circuit.dot").read_text() == text
    assert not (tmp_path / "out" / "circuit.svg").exists()
    with pytest.raises(GraphvizMissing, match="apt-get install graphviz"):
        inline_svg(text)


def test_unknown_suffix_is_refused(tmp_path, results):
    with pytest.raises(RenderError, match=r"must end in \.svg, \.png, \.pdf, \.dot"):
        render(circuit_dot(results), tmp_path / "circuit.jpg")
    assert not list(tmp_path.iterdir())


@needs_dot
def test_graphviz_errors_are_reported(tmp_path):
    with pytest.raises(GraphvizFailed, match="could not draw"):
        render("digraph { a -> }", tmp_path / "broken.svg")
