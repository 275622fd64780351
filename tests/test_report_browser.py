"""The report in a real headless browser (Debian's chromium): it loads without console
errors and its diagram and charts are visible in the screenshot, which is kept under
pytest's temporary folder (the path is printed; `pytest -s` shows it)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from circ.runtime.render.diagram import CATEGORY_COLOURS, HELPS, HURTS, circuit_dot
from circ.runtime.render.graphviz import inline_svg
from circ.runtime.render.report import write_report

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "mcq_2l4h.json"
WIDTH, HEIGHT = 1280, 4000
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
SPEC_SOURCE = 'spec "mcq-correct-letter"\nmodel demo\n'


def screenshot(page: Path, out: Path, profile: Path) -> list[str]:
    """Load `page` in headless chromium, save a screenshot; return its console lines."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         f"--screenshot={out}", f"--window-size={WIDTH},{HEIGHT}",
         "--enable-logging=stderr", "--v=0", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def pixel_count(image, colour: str, tolerance: int = 6) -> int:
    target = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return sum(count for count, pixel in image.getcolors(maxcolors=WIDTH * HEIGHT)
               if all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], target)))


def test_console_errors_are_detected(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><p>x</p><script>throw new Error("boom")</script>')
    console = screenshot(page, tmp_path / "broken.png", tmp_path / "profile")
    assert any("Uncaught Error: boom" in line for line in console)


def test_report_renders_cleanly_with_diagram_and_charts(tmp_path_factory):
    from PIL import Image, ImageStat

    folder = tmp_path_factory.mktemp("report-browser")
    results = json.loads(FIXTURE.read_text())
    diagram = inline_svg(circuit_dot(results)) if shutil.which("dot") else None
    page = write_report(results, SPEC_SOURCE, folder / "report.html", diagram_svg=diagram)
    shot = folder / "report.png"
    console = screenshot(page, shot, folder / "profile")
    print(f"\nreport screenshot: {shot}")
    assert console == []

    image = Image.open(shot).convert("RGB")
    assert Image.open(shot).format == "PNG" and image.size == (WIDTH, HEIGHT)
    assert max(ImageStat.Stat(image).stddev) > 20  # not a blank page
    # The DLA and path-patching bars, and the diagram's blue borders and edges.
    assert pixel_count(image, HELPS) > 5000
    assert pixel_count(image, HURTS) > 500
    if diagram:
        categories = sorted({n["category"] for n in results["circuits"]["output"]["nodes"]
                             if n["category"]})
        for index in range(len(categories)):  # each category's fill in the diagram
            assert pixel_count(image, CATEGORY_COLOURS[index]) > 500
