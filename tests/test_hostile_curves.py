"""Results files with hostile curve entries, grown circuits' `faithfulness` records and
ACDC entries: the report, the run summary (`Results.summary()`), `circ render`, `circ
diff` and `circ export` stop with a one-line message or carry on, never with another
exception, in bounded time, with text from the file escaped. The fixture
tests/fixtures/results/discovery_demo.json is what `circ run` wrote for
discovery_demo.circ beside it on the demo model."""
import copy
import io
import json
import time
from pathlib import Path

import pytest
from circ.compiler.diff.inputs import diff_main

from circ.cli.export import export_path
from circ.cli.render import render_path
from circ.results import Results, load_results
from circ.runtime.render.diagram import RenderError
from circ.runtime.render.report import report_html

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "discovery_demo.json"
GOOD = json.loads(FIXTURE.read_text(encoding="utf-8"))
SCRIPT = "<script>alert(1)</script>"
HOSTILE = {"nan": float("nan"), "infinite": float("inf"), "string": SCRIPT, "null": None, "object": {"a": [1]},
           "number": 3.5, "list": [SCRIPT, {}]}
PLACES = [("analyses", "a", "values"), ("circuits", "found", "nodes"), ("circuits", "found", "edges"),
          ("circuits", "found", "nodes", 0, "id"), ("analyses", "fc", "faithfulness"), ("analyses", "fc", "fractions"), ("analyses", "fc", "random"),
          ("analyses", "fc", "random", "faithfulness"), ("analyses", "fc", "random", "stderr"),
          ("analyses", "fc", "cpr"), ("analyses", "fc", "cmd"), ("analyses", "fc", "ranked_by"),
          ("analyses", "fc", "size_at_target"), ("analyses", "fc", "target"), ("analyses", "fc", "ranked"),
          ("analyses", "ec", "faithfulness", 1), ("analyses", "ec", "random", "cpr_stderr"),
          ("analyses", "a", "threshold"), ("analyses", "a", "baseline"), ("analyses", "a", "kept"),
          ("analyses", "a", "untried"),
          ("circuits", "found", "faithfulness"), ("circuits", "found", "faithfulness", "value"),
          ("circuits", "found", "faithfulness", "level"), ("circuits", "found", "faithfulness", "measured")]


def planted(place, value) -> dict:
    document = copy.deepcopy(GOOD)
    holder = document
    for step in place[:-1]:
        holder = holder[step]
    holder[place[-1]] = value
    return document


def readers_of(tmp_path, document, place=()) -> dict:
    """What each reader does with `document`: an exit code, or the text it made. The
    report (whose charts take most of the time) shows only the analysis at `place`."""
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    shown = json.loads(path.read_text(encoding="utf-8"))
    if place[:1] == ("analyses",):
        shown["analyses"] = {place[1]: shown["analyses"][place[1]]}
    elif place:
        shown["analyses"] = {}
    out = {}
    try:
        out["report"] = report_html(shown, "", diagram_svg=None)
    except RenderError as error:
        out["report"] = f"refused: {error}"
    try:
        out["summary"] = load_results(path).summary()
    except ValueError as error:
        out["summary"] = f"refused: {error}"
    err = io.StringIO()
    out["render"] = render_path(str(path), str(tmp_path / "c.dot"), None, err), err.getvalue()
    out["diff"] = diff_main(str(FIXTURE), str(path))[::-1]
    for circuit, analysis in (("found", "e"), ("af", "a")):
        err = io.StringIO()
        code = export_path(str(path), "eap-ig", None, circuit, analysis, io.StringIO(), err)
        out[f"export {analysis}"] = code, err.getvalue()
    return out


@pytest.mark.parametrize("place", PLACES, ids=lambda place: "/".join(map(str, place)))
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_value_in_a_curve_or_growth_record_is_read_or_refused_in_a_line(tmp_path, place, name):
    out = readers_of(tmp_path, planted(place, HOSTILE[name]), place)
    assert SCRIPT not in out["report"]
    for code, message in (out["render"], out["diff"], out["export e"], out["export a"]):
        assert code in (0, 1, 2), message
        assert "Traceback" not in message and len(message.strip().splitlines()) <= (1 if code == 2 else 10**6)
    assert all(len(line) < 2000 for line in out["summary"].splitlines())


def test_a_curve_that_is_no_list_is_shown_by_the_report_as_its_error():
    page = report_html(planted(("analyses", "fc", "faithfulness"), float("nan")), "", diagram_svg=None)
    assert ('<p class="error">cannot show this analysis: &#x27;fc: faithfulness by circuit size faithfulness'
            '&#x27; must be a list, not float</p>') in page


def test_the_summary_of_a_curve_with_text_for_numbers_says_n_a():
    document = planted(("analyses", "fc", "cpr"), SCRIPT)
    document["analyses"]["fc"]["random"] = "x"
    summary = Results(document).summary().splitlines()
    lines = summary[summary.index("fc (curve on clean, ld)") + 1:]
    assert lines[0].startswith("  ranking by |p|: CPR n/a  CMD +0.3683")
    assert lines[1].startswith("  random (None orders): CPR n/a  CMD n/a")


def test_a_curve_of_a_hundred_thousand_points_is_read_in_bounded_time(tmp_path):
    points = 10**5
    document = copy.deepcopy(GOOD)
    curve = document["analyses"]["fc"]
    curve.update(sizes=list(range(points)), fractions=[k / points for k in range(points)],
                 faithfulness=[0.5] * points, stderr=[0.0] * points)
    curve["random"].update(faithfulness=[0.25] * points, stderr=[0.0] * points)
    started = time.perf_counter()
    out = readers_of(tmp_path, document)
    assert time.perf_counter() - started < 20
    assert len(out["report"]) < 10**6  # the chart draws 2,000 of the points (263 MB of page when it drew 10**6)


@pytest.mark.parametrize("place, message", [
    (("analyses", "a", "values"), "analysis 'a' must have 'values' as an object"),
    (("circuits", "found", "edges"), "circuit 'found' must have 'edges' as a list of objects"),
    (("circuits", "found", "nodes", 0, "id"), "circuit 'found' has a node whose 'id' is not a string")])
def test_load_results_refuses_a_misplaced_object_naming_it(tmp_path, place, message):
    (tmp_path / "results.json").write_text(json.dumps(planted(place, 3.5)), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_results(tmp_path)


def test_the_python_api_reads_a_curve_and_its_growth():
    loaded = load_results(FIXTURE)
    curve = loaded.analysis("fc")
    assert curve.kind == "curve" and curve.stderr == {} and curve.values == {}
    assert curve.entry["cpr"] == pytest.approx(0.633395800136119)
    assert loaded.circuit("found").members == ["L0.H0", "L0.H2", "L0.MLP", "L1.H0", "L1.MLP"]


def test_a_thinned_curve_keeps_its_ends_and_even_spacing():
    from circ.runtime.render.charts import _evenly_thinned

    assert _evenly_thinned(5, 2000) == [0, 1, 2, 3, 4]
    drawn = _evenly_thinned(10**6, 2000)
    assert len(drawn) == 2000 and drawn[0] == 0 and drawn[-1] == 10**6 - 1
    assert max(b - a for a, b in zip(drawn, drawn[1:])) - min(b - a for a, b in zip(drawn, drawn[1:])) <= 1
