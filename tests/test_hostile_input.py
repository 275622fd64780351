"""Hostile input (issue 15): included files do not leak, one printed line is one line,
every tool agrees on what a line is, and nothing a spec, config, dataset, results
file or command-line value holds ends in a traceback. Each test tries the attack."""
import io
import json
import os

import pytest
from circ.compiler import ir
from circ.compiler.api import compile_file, compile_source
from circ.compiler.diagnostics import CircError
from circ.compiler.diff.inputs import diff_main
from circ.compiler.escape import markdown_code, markdown_text, terminal_text
from circ.compiler.syntax.fmt import format_source
from circ.runtime.render.summary import summarize
from click.testing import CliRunner

from circ.cli.fmt import fmt_paths
from circ.cli.main import main
from circ.cli.run import run_spec

SECRET = "hf_SECRETTOKEN0123456789"


def diagnostics(path, **options):
    with pytest.raises(CircError) as caught:
        compile_file(path, **options)
    return caught.value


def assert_one_line_each(text: str):
    for line in text.split("\n"):
        assert line.replace("\t", " ").isprintable(), repr(line)
        assert not line.startswith("::"), repr(line)


# --------------------------------------------------------------------------- includes
@pytest.fixture
def tree(tmp_path):
    """A spec folder next to a secret: tmp/token and tmp/spec/..."""
    (tmp_path / "token").write_text(SECRET + "\n")
    folder = tmp_path / "spec"
    (folder / "sub").mkdir(parents=True)
    return folder


@pytest.mark.parametrize("target", ["../token", "TOKEN_ABSOLUTE", "/proc/self/environ"])
def test_an_include_outside_the_spec_folder_is_refused_and_not_read(tree, target, monkeypatch):
    monkeypatch.setenv("CIRC_TEST_SECRET", SECRET)
    target = str(tree.parent / "token") if target == "TOKEN_ABSOLUTE" else target
    (tree / "s.circ").write_text(f'include "{target}"\nmodel demo\n')
    error = diagnostics(tree / "s.circ")
    assert [d.code for d in error.diagnostics] == ["E112"]
    assert "--include-outside" in error.render() and SECRET not in error.render()


def test_a_link_inside_the_folder_to_a_file_outside_is_outside(tree):
    os.symlink(tree.parent / "token", tree / "sub" / "token.circ")
    (tree / "s.circ").write_text('include "sub/token.circ"\n')
    error = diagnostics(tree / "s.circ")
    assert [d.code for d in error.diagnostics] == ["E112"] and SECRET not in error.render()


def test_allowed_outside_includes_are_parsed_but_never_echoed(tree):
    (tree / "s.circ").write_text('include "../token"\nmodel demo\n')
    error = diagnostics(tree / "s.circ", include_outside=True)
    rendered = error.render()
    assert error.diagnostics[0].span.path.endswith("token") and error.diagnostics[0].span.line == 1
    assert SECRET not in rendered and "hf_" not in rendered, rendered
    assert "|" not in rendered  # no caret line at all


def test_a_file_inside_the_folder_that_is_not_a_spec_is_located_not_echoed(tree):
    (tree / "sub" / "notes.txt").write_text(f"first line\n{SECRET}\n")
    (tree / "s.circ").write_text('include "sub/notes.txt"\n')
    rendered = diagnostics(tree / "s.circ").render()
    assert "notes.txt:1:" in rendered and "first" not in rendered and SECRET not in rendered


def test_an_included_spec_inside_the_folder_still_shows_its_line(tree):
    (tree / "sub" / "part.circ").write_text("data clean = mcq(n=)\n")
    (tree / "s.circ").write_text('include "sub/part.circ"\n')
    rendered = diagnostics(tree / "s.circ").render()
    assert "   1 | data clean = mcq(n=)" in rendered


def test_the_command_line_allows_outside_includes_only_when_asked(tree):
    (tree.parent / "shared.circ").write_text("model demo\n")
    (tree / "s.circ").write_text('include "../shared.circ"\n')
    refused = CliRunner().invoke(main, ["check", str(tree / "s.circ")])
    allowed = CliRunner().invoke(main, ["check", "--include-outside", str(tree / "s.circ")])
    assert refused.exit_code == 1 and "error[E112]" in refused.output
    assert allowed.exit_code == 0, allowed.output


@pytest.mark.parametrize("text, code", [('include "a\\u0000b"\n', "E114"), ('include "\\ud800"\n', "E105"),
                                        ('data d = jsonl("a\\u0000b")\n', "E114"),
                                        ('model demo\nrender c to "' + "a" * 300 + '.svg"\n', "E114"),
                                        ('data d = jsonl("' + "a" * 300 + '.jsonl")\n', "E114")])
def test_paths_no_file_can_have_are_diagnostics(tmp_path, text, code):
    if "render" in text:
        text = text.replace("render", "circuit c = [L0.H1]\nrender")
    with pytest.raises(CircError) as caught:
        compile_source(text, str(tmp_path / "s.circ"))
    assert code in [d.code for d in caught.value.diagnostics], caught.value.render()


# --------------------------------------------------------------------------- one line is one line
FORGED = "x\n::error title=forged::y\x1b[2J\u202e"


def test_diagnostics_escape_paths_messages_and_source_lines(tmp_path):
    text = f'data d = jsonl("{FORGED.encode("unicode_escape").decode()}")\n# \x1b[31m\u202e\ndata e = nope()\n'
    with pytest.raises(CircError) as caught:
        compile_source(text, str(tmp_path / "a\n::error title=forged::b.circ"))
    rendered = caught.value.render()
    assert_one_line_each(rendered)
    assert "\\x0a::error title=forged::" in rendered and "\\x1b[2J" in rendered and "\\u202e" in rendered


def test_carets_stay_under_the_span_when_the_line_holds_escapes(tmp_path):
    with pytest.raises(CircError) as caught:
        compile_source('spec "\x1b\x1b" nope\n', "s.circ")
    lines = caught.value.render().split("\n")
    assert lines[1].index("nope") == lines[2].index("^") and lines[2].count("^") == 4


def test_the_run_summary_escapes_names_and_dataset_text():
    results = {"analyses": {FORGED: {"kind": "attribute", "dataset": FORGED, "metric": "m",
                                     "values": {FORGED: 1.0}}},
               "circuits": {FORGED: {"nodes": [{"id": FORGED, "category": FORGED}]}},
               "expectations": [{"text": FORGED, "passed": False, "value": 1.0, "line": 3}]}
    assert_one_line_each(summarize(results))


def test_markdown_code_spans_hold_any_backticks():
    assert markdown_code("a`b") == "``a`b``"
    assert markdown_code("`x`") == "`` `x` ``"
    assert markdown_code("a|b", in_table=True) == "`a\\|b`"
    assert markdown_text("x`<b>[l](u)*_|") == "x\\`\\<b>\\[l\\](u)\\*\\_\\|"
    assert terminal_text("a\tb\u2028c\x85") == "a\tb\\u2028c\\x85"


def test_a_markdown_diff_cannot_be_broken_out_of(tmp_path):
    (tmp_path / "old.circ").write_text('spec "plain"\nmodel demo\n')
    (tmp_path / "new.circ").write_text('spec "a`|`b\\n## forged\\u202e"\nmodel demo\n')
    output, code = diff_main(str(tmp_path / "old.circ"), str(tmp_path / "new.circ"), fmt="markdown")
    assert code == 1
    row = next(line for line in output.splitlines() if line.startswith("| ~ "))
    assert row == "| ~ | spec name | `plain` | ``a`\\|`b\\x0a## forged\\u202e`` | line 1 |", row
    assert not any(line.startswith("## forged") for line in output.splitlines())


def test_fmt_writes_hidden_characters_in_strings_as_escapes():
    formatted = format_source('spec "a\u202eb\u200b\U000e0001\x85"\n')
    assert formatted == 'spec "a\\u202eb\\u200b\\udb40\\udc01\\u0085"\n'
    assert compile_source(formatted).name == "a\u202eb\u200b\U000e0001\x85"


def test_a_lone_surrogate_is_an_error_and_fmt_leaves_no_file_behind(tmp_path):
    (tmp_path / "s.circ").write_text('spec "\\ud800"\n')
    err = io.StringIO()
    assert fmt_paths([str(tmp_path / "s.circ")], False, io.StringIO(), err) == 1
    assert "error[E105]: lone surrogate `\\ud800`" in err.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.circ"]


# --------------------------------------------------------------------------- what a line is
SEPARATORS = ["\f", "\u2028", "\x85", "\u2029", "\x0b"]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_other_separators_do_not_end_lines(separator):
    text = f"# one{separator}still one\nmodel demo\n# three{separator}x\ndata d = nope()\n"
    with pytest.raises(CircError) as caught:
        compile_source(text, "s.circ")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.span.line == 4
    assert "   4 | data d = nope()" in caught.value.render()


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_carriage_returns_end_lines_everywhere(newline):
    text = newline.join(["model demo", "", "data d = nope()", ""])
    with pytest.raises(CircError) as caught:
        compile_source(text, "s.circ")
    assert caught.value.diagnostics[0].span.line == 3
    assert "   3 | data d = nope()" in caught.value.render()
    assert ir.source_lines(text) == ["model demo", "", "data d = nope()"]


@pytest.fixture(scope="module")
def separator_run(tmp_path_factory, one_thread):
    folder = tmp_path_factory.mktemp("lines")
    text = ("model demo  # \x85\n# a comment\u2028with a separator\f\n"
            'data clean = mcq(n=4, labels="ABCD", seed=0)\r\n'
            "metric ld = logit_diff(answer, wrong) at last\r"
            "analysis dla = attribute(heads, on=clean, metric=ld)\n"
            "expect dla.total > -1000\n")
    (folder / "s.circ").write_text(text, newline="")
    code = run_spec(str(folder / "s.circ"), str(folder / "out"), model=None, device=None, batch_size=4,
                    seed=0, trust_remote_code=False, progress=False, stdout=io.StringIO(), stderr=io.StringIO())
    return code, json.loads((folder / "out" / "results.json").read_text()), folder


def test_results_and_report_record_the_line_the_parser_saw(separator_run):
    code, results, folder = separator_run
    assert code == 0
    (expectation,) = results["expectations"]
    assert expectation["line"] == 6 and expectation["text"] == "expect dla.total > -1000"
    report = (folder / "out" / "report.html").read_text()
    assert 'id="src-L6"' in report and 'id="src-L7"' not in report


# --------------------------------------------------------------------------- no traceback
def test_render_targets_that_need_each_other_as_folder_are_a_check_error():
    with pytest.raises(CircError) as caught:
        compile_source('model demo\ncircuit c = [L0.H1]\nrender c to "a.svg"\nrender c to "a.svg/b.svg"\n')
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E316" and diagnostic.span.line == 4


def test_attribution_with_an_accuracy_metric_is_a_check_error():
    with pytest.raises(CircError) as caught:
        compile_source('model demo\ndata clean = mcq(n=4)\ndata moved = clean.move_answer()\n'
                       'metric acc = accuracy at last\n'
                       'analysis p = patch(heads, source=moved, target=clean, metric=acc, method=attribution)\n')
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("E306", 5)]


def test_a_seed_beyond_64_bits_is_a_usage_error(tmp_path):
    (tmp_path / "s.circ").write_text("model demo\n")
    result = CliRunner().invoke(main, ["run", str(tmp_path / "s.circ"), "--seed", str(2**70)])
    assert result.exit_code == 2 and "--seed" in result.output, result.output


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"n_layer": ' + "9" * 5000 + "}",
                                  '{"n_layer": 2, "n_head": 1e400}'])
def test_broken_config_json_is_a_diagnostic(tmp_path, text):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(text)
    with pytest.raises(CircError) as caught:
        compile_source('model hf("model")\n', str(tmp_path / "s.circ"))
    assert [d.code for d in caught.value.diagnostics] == ["E506"]
    assert len(caught.value.render()) < 1500


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": ' + "1" * 5000 + "}",
                                  '{"a": 4096}', '{"a": "cuda:' + "9" * 50 + '"}'])
def test_broken_device_maps_are_errors(tmp_path, text):
    from circ.runtime.models.device_maps import DeviceMapError, parse_device_map

    (tmp_path / "map.json").write_text(text)
    for given in (text, "map.json"):
        with pytest.raises(DeviceMapError):
            parse_device_map(given, tmp_path)


SLIPPED_THROUGH = {  # specs that check clean and fail while running
    "float16_dla": ('model demo(dtype="float16")\ndata clean = mcq(n=4, labels="ABCD", seed=0)\n'
                    "metric ld = logit_diff(answer, wrong) at last\n"
                    "analysis dla = attribute(heads, on=clean, metric=ld)\n", 4),
    "mean_of_another_length": ('model demo\ndata clean = mcq(n=4, labels="ABCD", seed=0)\n'
                               "data other = induction(n=4, length=7, seed=1)\n"
                               "metric ld = logit_diff(answer, wrong) at last\n"
                               "analysis p = patch(heads, source=mean(other), target=clean, metric=ld)\n", 5),
}


@pytest.mark.parametrize("name", sorted(SLIPPED_THROUGH))
def test_what_check_lets_through_is_a_diagnostic_at_its_line(tmp_path, one_thread, name):
    text, line = SLIPPED_THROUGH[name]
    (tmp_path / "s.circ").write_text(text)
    err = io.StringIO()
    code = run_spec(str(tmp_path / "s.circ"), str(tmp_path / "out"), model=None, device=None, batch_size=4,
                    seed=0, trust_remote_code=False, progress=False, stdout=io.StringIO(), stderr=err)
    if code == 0:  # fixed at its root since: then it must have written results
        assert (tmp_path / "out" / "results.json").is_file()
        return
    assert code == 2 and "Traceback" not in err.getvalue(), err.getvalue()
    assert err.getvalue().startswith(f"{tmp_path / 's.circ'}:{line}:1: error[E600]: "), err.getvalue()
    assert not (tmp_path / "out" / "results.json").exists()
