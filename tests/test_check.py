"""The checker: valid specs lower to the expected IR; models and shapes; includes;
diagnostics; no torch on import; no input makes the compiler crash."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from circ.compiler import ir
from circ.compiler.api import compile_file, compile_source
from circ.compiler.check.model_shape import (
    DEMO_SHAPE,
    ShapeError,
    shape_for,
    shape_from_config,
)
from circ.compiler.diagnostics import CircError, Diagnostic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.circ"))
VALID = sorted((ROOT / "tests" / "fixtures" / "valid").glob("*.circ"))
HEAD = "data clean = mcq(n=8)\nmetric ld = logit_diff at last\n"


def errors(text, path="t.circ", **kwargs):
    with pytest.raises(CircError) as caught:
        compile_source(text, path, **kwargs)
    return [(d.code, d.span.line, d.span.col) for d in caught.value.diagnostics]


def ids(node_list):
    return [n.id for n in node_list.nodes]


@pytest.mark.parametrize("path", SPECS + VALID, ids=[p.name for p in SPECS + VALID])
def test_every_spec_and_valid_fixture_checks(path):
    spec = compile_file(path)
    assert spec.path == str(path)
    assert spec.shape == OWN_SHAPES.get(path.name, DEMO_SHAPE)


# Specs on a model of their own: the shape read from its folder's config.json.
OWN_SHAPES = {"induction_llama.circ": ir.Shape(n_layers=2, n_heads=4, d_model=64, d_head=16, d_vocab=13,
                                               n_ctx=64, d_mlp=8)}


def test_case_study_spec_lowers_as_written():
    spec = compile_file(ROOT / "specs" / "mcq_correct_letter.circ")
    assert spec.name == "mcq-correct-letter"
    assert spec.dataset("moved") == ir.Dataset("moved", "move_answer", (("seed", 3),), base="clean")
    assert spec.dataset("letters").param("labels") == ir.Word("random_letters")
    every_head = [f"L{l}.H{h}" for l in range(DEMO_SHAPE.n_layers) for h in range(DEMO_SHAPE.n_heads)]
    dla = spec.analysis("dla")
    assert [i for i in ids(dla.nodes) if ".H" in i] == every_head
    assert [i for i in ids(dla.nodes) if i.endswith("MLP")] == ["L0.MLP", "L1.MLP"]
    direct, total, knockout = (spec.analysis(name) for name in ("direct", "total", "knockout"))
    assert direct.source == total.source == ir.PatchSource("dataset", "moved")
    assert direct.option("effect") == "direct" and direct.option("method") == "exact"
    assert total.option("effect") == "total"
    assert knockout.source == ir.PatchSource("mean", "clean")
    output = spec.circuit("output").nodes
    assert output == ir.Select("direct", top=4, where=ir.Compare(ir.Abs(ir.Field("effect")), ">", 0.5))
    assert spec.circuit("circuit").nodes == ir.Select(
        "knockout", top=8, where=ir.Compare(ir.Abs(ir.Field("effect")), ">", 1.0))
    lowrank = spec.analysis("lowrank")
    assert lowrank.nodes == ir.Select("output", best=True, category="correct_letter")
    assert lowrank.option("ranks") == (1, 2, 3, 4, 8, "full")
    assert lowrank.option("eval") == ("letters", "numbers")
    quantities = [e.left for e in spec.expectations]
    assert quantities[:3] == [ir.Accuracy("clean"), ir.MetricMean("ld", "letters"),
                              ir.MetricMean("ld", "numbers")]
    assert quantities[3] == ir.Quantity("dla", "total")
    assert quantities[5] == ir.Quantity("dla", "rank", (("node", "L1.H0"),))
    assert quantities[6] == ir.Node(1, "head", 0)
    assert spec.expectations[6].right == ir.Select("output", category="correct_letter")
    assert quantities[7] == ir.Quantity("attn", "attention", (("node", "L1.H0"), ("position", "answer_text")))
    assert quantities[8] == ir.Quantity("paths", "edge", (("sender", "L0.MLP"), ("receiver", "L1.H0.q")))
    assert (quantities[9], spec.expectations[9].right) == (ir.Select("output"), ir.Select("circuit"))
    assert quantities[10] == ir.Quantity("output_only", "value")
    assert quantities[11] == ir.Quantity("_expect12_faithfulness", "value")
    assert spec.analysis("_expect12_faithfulness").source == ir.PatchSource("mean", "clean")
    assert quantities[12] == ir.Quantity("lowrank", "recovered", (("dataset", "clean"), ("max_rank", 8)))
    assert [e.form for e in spec.expectations] == ["number"] * 6 + ["membership", "number", "number",
                                                                     "relation"] + ["number"] * 4
    assert [(e.op, e.right) for e in spec.expectations if e.form == "number"] == [
        (">=", 0.98), (">", 5.0), (">", 5.0), (">", 10.0), ("<", -2.0), ("<=", 2.0), (">", 0.9),
        ("<", -5.0), ("<", 0.5), (">=", 0.8), (">=", 0.9), ("<", 0.9)]
    assert {c.attention for c in spec.categories} == {"_attn_output", "_attn_circuit"}
    assert spec.analysis("_attn_output") == ir.Analysis(
        "_attn_output", "attention", ir.Select("output"), "clean", options=(("query", ir.LAST),))


def test_every_ir_object_has_a_span_in_its_file():
    spec = compile_file(ROOT / "specs" / "random_labels.circ")
    common = str(Path(ROOT / "specs" / "common.circ"))
    assert spec.dataset("clean").span.path == os.path.normpath(common)
    assert spec.dataset("letters").span.path == str(ROOT / "specs" / "random_labels.circ")
    for item in spec.datasets + spec.metrics + spec.analyses + spec.expectations:
        assert item.span.line >= 1
    assert spec.includes == (os.path.normpath(common),)


def test_nodes_come_in_canonical_order():
    spec = compile_source(HEAD + "circuit c = [L1.MLP, EMBED, L0.H2, L1.RESID, L0.H2.k, L0.H2.q]")
    assert ids(spec.circuit("c").nodes) == ["EMBED", "L0.H2", "L0.H2.q", "L0.H2.k", "L1.RESID", "L1.MLP"]


def test_set_difference_and_union():
    spec = compile_source(HEAD + "circuit c = heads - L0.* - [L1.H1] + L0.MLP")
    assert ids(spec.circuit("c").nodes) == ["L0.MLP", "L1.H0", "L1.H2", "L1.H3"]


def test_file_paths_are_resolved_from_the_spec_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.jsonl").write_text("{}\n")
    spec_path = tmp_path / "s.circ"
    spec_path.write_text('data p = jsonl("data/p.jsonl", n=3)\n')
    dataset = compile_file(spec_path).dataset("p")
    assert dataset.params == (("n", 3), ("path", str(tmp_path / "data" / "p.jsonl")))


def test_on_reruns_an_analysis_with_overrides():
    spec = compile_source(HEAD + "data other = mcq(n=8, seed=1)\n"
                          "analysis p = patch(heads, source=zero, target=clean, metric=ld)\n"
                          "analysis q = p.on(other, effect=direct)\n")
    p, q = spec.analysis("p"), spec.analysis("q")
    assert (q.kind, q.dataset, q.option("effect"), q.nodes) == ("patch", "other", "direct", p.nodes)


def test_defaults_are_filled_in():
    spec = compile_source(HEAD + "analysis f = faithfulness(L1.*, on=clean, metric=ld)\n"
                          "analysis a = attention(L1.H0, on=clean)\n")
    assert spec.analysis("f").source == ir.PatchSource("mean", "clean")
    assert spec.analysis("a").option("query") == ir.LAST
    assert compile_source(HEAD).dataset("clean").params == (("labels", "ABCD"), ("n", 8), ("seed", 0))


def test_every_error_of_a_file_is_reported_at_once():
    found = errors(HEAD + "analysis a = attribute(L7.H0, on=clean, metric=ld)\n"
                   "analysis b = attention(heads, on=clen)\n"
                   "analysis c = patch(heads, source=zero, target=clean, metric=ld, effect=sideways)\n")
    assert [code for code, _, _ in found] == ["E401", "E201", "E304"]
    assert [line for _, line, _ in found] == [3, 4, 5]


def test_undefined_name_suggests_the_closest():
    with pytest.raises(CircError) as caught:
        compile_source(HEAD + "analysis a = attention(heads, on=claen)\n")
    assert caught.value.diagnostics[0].hint == "did you mean `clean`?"


def test_out_of_range_layer_hint_names_the_valid_range():
    with pytest.raises(CircError) as caught:
        compile_source(HEAD + "circuit c = [L9.H0]\n")
    assert caught.value.diagnostics[0].hint == "valid layers are L0 to L1"


def test_diagnostic_format_has_location_source_line_caret_and_hint():
    diagnostic = Diagnostic("E201", "undefined name `x`", ir.Span("a.circ", 2, 8, 2, 11), "did you mean `y`?")
    assert diagnostic.format("model demo\ncircuit xyz = heads\n") == (
        "a.circ:2:8: error[E201]: undefined name `x`\n"
        "   2 | circuit xyz = heads\n"
        "     |        ^^^\n"
        "  hint: did you mean `y`?")


# --------------------------------------------------------------------------- models and shapes
GPT2 = {"n_layer": 3, "n_head": 2, "n_embd": 64, "vocab_size": 100, "n_positions": 32, "n_inner": None}
LLAMA = {"num_hidden_layers": 5, "num_attention_heads": 8, "hidden_size": 256, "vocab_size": 1000,
         "max_position_embeddings": 128, "intermediate_size": 688, "head_dim": 16}


def test_shape_from_gpt2_and_llama_configs():
    assert shape_from_config(GPT2) == ir.Shape(3, 2, 64, 32, 100, 32, 256)
    assert shape_from_config(LLAMA) == ir.Shape(5, 8, 256, 16, 1000, 128, 688)
    with pytest.raises(ShapeError):
        shape_from_config({"n_layer": 2})


def test_local_model_ranges_come_from_its_config(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text(json.dumps(GPT2))
    spec_path = tmp_path / "s.circ"
    spec_path.write_text('model hf("tiny", dtype="float16", device_map="auto")\n' + HEAD +
                         "circuit ok = [L2.H1]\ncircuit bad = [L3.H0, L0.H2]\n")
    with pytest.raises(CircError) as caught:
        compile_file(spec_path)
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("E401", 5), ("E402", 5)]
    spec_path.write_text('model hf("tiny", dtype="float16", device_map="auto")\n' + HEAD)
    spec = compile_file(spec_path)
    assert spec.model.location == str(tmp_path / "tiny") and spec.model.device_map == "auto"
    assert spec.shape.n_layers == 3


def test_cached_model_config_is_found(tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "models--org--small"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text(json.dumps(LLAMA))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert shape_for(ir.Model("cache", "org/small"), tmp_path).n_layers == 5
    assert errors('model cache("org/missing")\n')[0][0] == "E506"


def test_gguf_shape_is_unknown_until_given(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    spec_path = tmp_path / "s.circ"
    spec_path.write_text('model gguf("m.gguf", tokenizer="gpt2")\n' + HEAD +
                         "circuit c = heads - [L0.H0]\ncircuit far = [L40.H3]\n")
    spec = compile_file(spec_path)
    assert spec.shape is None and spec.model.tokenizer == "gpt2"
    assert spec.circuit("c").nodes == ir.NodeList((), unexpanded="heads - [L0.H0]")
    assert ids(spec.circuit("far").nodes) == ["L40.H3"]
    shaped = compile_file(spec_path, shape=ir.Shape(41, 4, 64, 16, 100, 64))
    assert len(shaped.circuit("c").nodes.nodes) == 41 * 4 - 1


def test_model_override_replaces_the_spec_model():
    spec = compile_source("model demo\n" + HEAD, model_override=ir.Model("demo", device="cuda"))
    assert spec.model.device == "cuda"


# --------------------------------------------------------------------------- robustness
def test_compiler_import_loads_no_torch():
    code = ("import sys, circ.compiler.api, circ.compiler.syntax.fmt, circ.cli.check, circ.cli.fmt, circ.cli.plan; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformer_lens')]; "
            "print(bad)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


TOKENS = ["data", "metric", "analysis", "circuit", "categories", "expect", "render", "model",
          "include", "spec", "x", "clean", "=", "(", ")", "[", "]", "{", "}", ",", ".", "+", "-",
          "where", "and", "or", "not", ">", "<=", "1", "0.5", "-2", '"s"', "L0.H1", "L9.*", "heads",
          "mcq", "patch", "top", "best", "attends", "on", "\n", "# c\n", "at", "last", "to", "rank"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=30))
def test_token_soup_never_crashes(tokens):
    try:
        compile_source(" ".join(tokens))
    except CircError as error:
        assert error.diagnostics


CASE_STUDY = (ROOT / "specs" / "mcq_correct_letter.circ").read_text()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(CASE_STUDY) - 1), st.integers(0, 8), st.text(max_size=4))
def test_edited_spec_never_crashes(start, length, insert):
    text = CASE_STUDY[:start] + insert + CASE_STUDY[start + length:]
    try:
        compile_source(text, str(ROOT / "specs" / "edited.circ"))
    except CircError as error:
        assert error.diagnostics
        error.render()


def test_attention_only_model_has_no_mlps(tmp_path):
    (tmp_path / "attn").mkdir()
    (tmp_path / "attn" / "config.json").write_text(json.dumps(dict(GPT2, attn_only=True)))
    spec_path = tmp_path / "s.circ"
    spec_path.write_text('model hf("attn")\ncircuit c = [L0.MLP]\ncircuit m = mlps + L0.H0\n')
    with pytest.raises(CircError) as caught:
        compile_file(spec_path)
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("E405", 2)]
    spec_path.write_text('model hf("attn")\ncircuit m = mlps + L0.H0\n')
    assert ids(compile_file(spec_path).circuit("m").nodes) == ["L0.H0"]


def test_literal_circuit_categories_read_a_covering_attention_analysis():
    spec = compile_source(HEAD + "analysis dla = attribute(heads, on=clean, metric=ld)\n"
                          "circuit c = [L1.H0, L1.MLP]\n"
                          "analysis att = attention(L1.*, on=clean, query=answer_label)\n"
                          "categories c { mover = attends(labels) > 0.5 and dla > 0 }\n")
    assert [c.attention for c in spec.categories] == ["att"]
    assert not any(a.name.startswith("_") for a in spec.analyses)


def test_every_diagnostic_code_is_documented():
    from circ.compiler.diagnostics import CODES

    docs = (ROOT / "docs" / "language.md").read_text()
    for code in CODES:
        assert f"| {code} |" in docs, code


def test_labels_may_be_a_list_of_words_or_a_scheme():
    spec = compile_source('data a = mcq(n=4, labels=["A1", "B1", "C1"])\n'
                          "data b = mcq(n=4, labels=random_letters, options=3)\n")
    assert spec.dataset("a").param("labels") == ("A1", "B1", "C1")
    assert spec.dataset("b").params == (("labels", ir.Word("random_letters")), ("n", 4),
                                        ("options", 3), ("seed", 0))


def test_the_language_reference_opening_example_checks():
    docs = (ROOT / "docs" / "language.md").read_text()
    example = docs.split("```\n", 2)[1]
    spec = compile_source(example, str(ROOT / "docs" / "example.circ"))
    assert spec.name == "mcq-correct-letter" and len(spec.expectations) == 2
