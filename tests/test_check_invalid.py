"""Every invalid fixture fails with exactly the diagnostics its header announces.

Each file in tests/fixtures/invalid/ starts with `# expect: CODE [FILE:]LINE:COL, ...`
listing every diagnostic the file must produce (FILE when it is in another file).
A second line `# check --model PATH` checks it as `circ check --model PATH` would
(PATH relative to the fixture's folder).
"""
from pathlib import Path

import pytest
from circ.compiler.api import compile_file
from circ.compiler.diagnostics import CODES, CircError
from circ.running import model_from_option

INVALID = Path(__file__).parent / "fixtures" / "invalid"
FIXTURES = sorted(INVALID.glob("*.circ"))


def expected_diagnostics(path: Path) -> set[tuple[str, str, int, int]]:
    header = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    assert header.startswith("# expect: "), f"{path.name} has no expect header"
    found = set()
    for item in header[len("# expect: "):].split(","):
        code, where = item.split()
        parts = where.split(":")
        file = parts[0] if len(parts) == 3 else path.name
        found.add((code, file, int(parts[-2]), int(parts[-1])))
    return found


def compile_fixture(path: Path):
    lines = path.read_bytes().split(b"\n", 2)
    option = lines[1].decode("ascii", "replace") if len(lines) > 1 else ""
    if not option.startswith("# check --model "):
        return compile_file(path)
    model = str((path.parent / option[len("# check --model "):]).resolve())
    return compile_file(path, model_override=lambda base: model_from_option(model, base))


def test_there_are_at_least_thirty_invalid_fixtures():
    assert len(FIXTURES) >= 30


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_invalid_fixture_reports_announced_diagnostics(path):
    with pytest.raises(CircError) as caught:
        compile_fixture(path)
    got = {(d.code, Path(d.span.path).name, d.span.line, d.span.col)
           for d in caught.value.diagnostics}
    assert got == expected_diagnostics(path)
    for diagnostic in caught.value.diagnostics:
        assert diagnostic.code in CODES


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_rendered_diagnostics_point_at_the_source(path):
    with pytest.raises(CircError) as caught:
        compile_fixture(path)
    rendered = caught.value.render()
    first = caught.value.diagnostics[0]
    assert rendered.splitlines()[0] == (
        f"{first.span.path}:{first.span.line}:{first.span.col}: "
        f"error[{first.code}]: {first.message}")
    assert "Traceback" not in rendered
