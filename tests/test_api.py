"""The Python API: compile, plan, run (on a path, "demo" or a loaded bridge), Results,
save/load, diff; and every code block of docs/api.md runs as written."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import circ

ROOT = Path(__file__).resolve().parent.parent

SPEC = """
spec "api"
model demo
data clean = mcq(n=12, labels="ABCD", seed=0)
data moved = clean.move_answer(seed=3)
metric ld = logit_diff(answer, wrong) at last
analysis dla    = attribute(heads + mlps + embed, on=clean, metric=ld)
analysis direct = patch(heads + mlps, source=moved, target=clean, metric=ld, effect=direct)
analysis attn   = attention(L1.*, on=clean)
circuit output = top(dla, 2)
expect dla.total > 5
expect dla.total > 1000
render output to "output.svg"
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return circ.run(SPEC, progress=False)


def test_import_circ_loads_neither_torch_nor_the_compiler():
    code = ("import sys, circ; print('torch' in sys.modules, 'circ.compiler.api' in sys.modules, "
            "'transformer_lens' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False", "False"]


def test_compile_text_and_path_give_the_same_checked_spec(tmp_path):
    path = tmp_path / "api.circ"
    path.write_text(SPEC, encoding="utf-8")
    from_path, from_text = circ.compile(path), circ.compile(SPEC)
    assert from_path.name == from_text.name == "api"
    assert [a.name for a in from_path.ir.analyses] == [a.name for a in from_text.ir.analyses]
    assert sorted(circ.plan(from_path).nodes) == sorted(circ.plan(from_text).nodes)


def test_compile_raises_one_error_type_with_every_diagnostic():
    with pytest.raises(circ.CircError) as caught:
        circ.compile('data clean = mcq(n=8)\nanalysis a = attribute(heads, on=claen, metric=ld)')
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("E201", 2), ("E201", 2)]
    assert "claen" in caught.value.render()


def test_compile_with_another_model_checks_ranges_against_it(tmp_path):
    folder = tmp_path / "four_layers"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "n_layer": 4, "n_head": 4, "n_embd": 64, "vocab_size": 300,
        "n_positions": 64, "architectures": ["GPT2LMHeadModel"]}))
    text = SPEC.replace("attention(L1.*", "attention(L3.*")
    with pytest.raises(circ.CircError) as caught:
        circ.compile(text)
    assert [d.code for d in caught.value.diagnostics] == ["E401"]
    assert circ.compile(text, model=str(folder)).ir.shape.n_layers == 4


def test_run_returns_results_equal_to_the_command_line(results, tmp_path):
    spec = tmp_path / "api.circ"
    spec.write_text(SPEC, encoding="utf-8")
    done = subprocess.run([str(Path(sys.executable).with_name("circ")), "run", str(spec), "--out",
                           str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr  # the second expectation fails
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    for name in ("dla", "direct"):
        assert results.analysis(name).values == pytest.approx(written["analyses"][name]["values"], abs=1e-9)
    assert results.circuit().members == [n["id"] for n in written["circuit"]["nodes"]]
    assert [e.passed for e in results.expectations] == [True, False]
    assert results.passed is False


def test_values_keep_their_identities(results):
    dla = results.analysis("dla")
    assert dla.kind == "attribute" and dla.dataset == "clean" and dla.metric == "ld"
    assert sum(dla.values.values()) == pytest.approx(dla.entry["total"], abs=1e-4)
    top = sorted(dla.values, key=lambda k: -abs(dla.values[k]))[:2]
    assert sorted(results.circuit("output").members) == sorted(top)
    assert results.expectations[0].value == pytest.approx(dla.entry["total"])


def test_to_pandas_has_one_row_per_node_and_nested_levels_as_columns(results):
    table = results.analysis("dla").to_pandas()
    assert list(table.columns[:2]) == ["node", "value"] and {"stderr", "n"} <= set(table.columns)
    assert dict(zip(table["node"], table["value"])) == results.analysis("dla").values
    attention = results.analysis("attn").to_pandas()
    assert {"node", "position", "value"} <= set(attention.columns)
    values = results.analysis("attn").values
    entry = results.analysis("attn").entry
    for row in attention.itertuples():
        assert row.value == pytest.approx(values[row.node][row.position])
        assert row.stderr == pytest.approx(entry["stderr"][row.node][row.position])
        assert row.n == entry["n"][row.node][row.position] == 12


def test_a_loaded_bridge_is_used_as_it_is(results, monkeypatch):
    from transformer_lens.model_bridge import TransformerBridge

    from circ.runtime.models import loading
    from circ.runtime.models.demo_model import demo_model_dir

    bridge = TransformerBridge.boot_transformers(str(demo_model_dir()))

    def no_second_load(*args, **kwargs):
        raise AssertionError("the model was loaded again")

    monkeypatch.setattr(loading, "load_model", no_second_load)
    again = circ.run(SPEC, model=bridge, progress=False)
    assert again.data["model"]["source"] == "memory"
    for name in ("dla", "direct"):
        assert again.analysis(name).values == pytest.approx(results.analysis(name).values, abs=1e-5)


def test_a_run_prints_nothing_unless_asked(capfd):
    circ.run(SPEC.replace("n=12", "n=4"), progress=False)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_broken_run_raises_circ_error_at_the_spec_line(tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text('{"prompt": "x", "answer": "nowhere-in-the-vocabulary", "wrong": ["y"]}\n')
    text = (f'model demo\ndata d = jsonl("{data}")\nmetric ld = logit_diff(answer, wrong) at last\n'
            "analysis a = attribute(heads, on=d, metric=ld)\n")
    with pytest.raises(circ.CircError) as caught:
        circ.run(text, progress=False)
    assert caught.value.diagnostics[0].code == "E600"


def test_save_load_and_diff_round_trip(results, tmp_path):
    path = results.save(tmp_path / "saved")
    assert {p.name for p in (tmp_path / "saved").iterdir()} >= {"results.json", "report.html", "output.svg"}
    loaded = circ.load_results(path)
    assert loaded.data == json.loads(path.read_text())
    assert circ.diff(results, loaded)["different"] is False
    cli = subprocess.run([str(Path(sys.executable).with_name("circ")), "diff", str(path), str(path),
                          "--format", "json"], capture_output=True, text=True)
    assert circ.diff(str(path), str(path)) == json.loads(cli.stdout)


def test_the_notebook_view_shows_expectations_diagram_and_charts(results):
    html = results._repr_html_()
    assert "expect dla.total &gt; 1000" in html and "1 of 2 expectations fail" in html
    assert html.count("<svg") >= 3  # the diagram and a chart per per-node analysis


def _api_blocks() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_every_code_block_of_the_api_page_runs(monkeypatch):
    blocks = _api_blocks()
    assert len(blocks) >= 5
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["rows"]["different"] is False


def test_every_prompts_values_reach_the_notebook_and_round_trip(results, tmp_path):
    import statistics

    dla = results.analysis("dla")
    assert set(dla.per_prompt) == set(dla.values)
    for node, values in dla.per_prompt.items():
        assert len(values) == dla.n == 12
        assert statistics.mean(values) == pytest.approx(dla.values[node], abs=1e-9)
    table = dla.to_pandas(per_prompt=True)
    assert list(table.columns) == ["node", "prompt", "value"] and len(table) == 12 * len(dla.values)
    path = results.save(tmp_path / "kept")
    assert (path.parent / "per_prompt.json").is_file()
    assert circ.load_results(path).analysis("dla").per_prompt == dla.per_prompt
