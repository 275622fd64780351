"""The report's layer x token heatmap for patch(at=each): the values drawn, their
sign (as stored: positive helps, drawn blue) and the first prompt's tokens on the axis."""
import math

import pytest
from circ.runtime.render import charts
from circ.runtime.render.report import report_html
from matplotlib.axes import Axes

TOKENS = ["<bos>", "early", "france", "roof"]
POSITIONS = {"L1.RESID": {"0": 0.0, "1": -0.5, "2": 0.25, "3": -2.0},
             "L0.RESID": {"0": 0.0, "1": 0.125, "2": -1.0, "3": 0.5}}


@pytest.fixture
def drawn(monkeypatch):
    grids = []
    original = Axes.imshow

    def record(self, grid, *args, **kwargs):
        grids.append((grid, kwargs))
        return original(self, grid, *args, **kwargs)

    monkeypatch.setattr(Axes, "imshow", record)
    return grids


def test_cells_hold_the_stored_values_by_layer_and_position(drawn):
    svg = charts.position_heatmap(POSITIONS, TOKENS, title="p: effect by position")
    (grid, kwargs), = drawn
    assert grid == [[0.0, 0.125, -1.0, 0.5], [0.0, -0.5, 0.25, -2.0]]  # L0 first, drawn at the bottom
    assert kwargs["origin"] == "lower" and kwargs["vmin"] == -2.0 and kwargs["vmax"] == 2.0
    for token in ("early", "france", "roof"):
        assert token in svg
    assert "helps" in svg


def test_only_the_strongest_nodes_are_drawn_past_the_limit(drawn):
    many = {f"L{layer}.RESID": {"0": float(layer)} for layer in range(5)}
    svg = charts.position_heatmap(many, ["<bos>"], title="p", limit=2)
    (grid, _), = drawn
    assert [row[0] for row in grid] == [3.0, 4.0]
    assert "the 2 strongest of 5 nodes" in svg


def test_missing_positions_are_blank(drawn):
    charts.position_heatmap({"L0.RESID": {"0": 1.0, "2": 1.0}}, TOKENS[:3], title="p")
    (grid, _), = drawn
    assert math.isnan(grid[0][1])


def test_the_report_draws_the_heatmap_for_a_patch_at_each():
    results = {"model": {"n_layers": 2, "n_heads": 4}, "analyses": {"p": {
        "kind": "patch", "dataset": "seqs", "metric": "lp", "position": "each", "effect": "total",
        "baseline": {"clean": -9.0, "patched_source": -8.0}, "tokens": TOKENS, "positions": POSITIONS,
        "values": {node: sum(v.values()) for node, v in POSITIONS.items()}}}, "expectations": []}
    page = report_html(results, "", diagram_svg=None)
    assert "p: effect by position" in page
    assert "sum over positions" in page


def test_listed_positions_are_columns_by_name(drawn):
    svg = charts.position_heatmap({"L0.RESID": {"answer_label": 0.5, "last": -1.0}}, [], title="p")
    (grid, _), = drawn
    assert grid == [[0.5, -1.0]]
    assert "answer_label" in svg


def test_the_report_draws_attribution_at_each_position_without_the_bias_row(drawn):
    positions = {**POSITIONS, "BIAS": {"0": 9.0, "1": 9.0, "2": 9.0, "3": 9.0}}
    results = {"model": {"n_layers": 2, "n_heads": 4}, "analyses": {"dla": {
        "kind": "attribute", "dataset": "seqs", "metric": "ld", "position": "each", "tokens": TOKENS,
        "positions": positions, "values": {"L0.RESID": 0.5, "L1.RESID": -2.0, "BIAS": 9.0},
        "total": 7.5}}, "expectations": []}
    page = report_html(results, "", diagram_svg=None)
    assert "dla: direct contribution by position" in page
    heatmap = [grid for grid, kwargs in drawn if kwargs.get("origin") == "lower"]
    assert heatmap == [[[0.0, 0.125, -1.0, 0.5], [0.0, -0.5, 0.25, -2.0]]]
