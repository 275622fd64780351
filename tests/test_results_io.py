"""results.json is deterministic, valid JSON and replaced atomically."""
import json
import os

import pytest
from circ.runtime.results import write as results_io


def test_sorted_and_nan_as_null(tmp_path):
    path = results_io.write_results(tmp_path / "r.json", {"b": float("nan"), "a": [1.5, float("inf")]})
    text = path.read_text()
    assert text.index('"a"') < text.index('"b"')
    assert json.loads(text) == {"a": [1.5, None], "b": None}


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old\n")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        results_io.write_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
