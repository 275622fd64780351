"""`circ check`, `circ fmt` and `circ plan` as a user runs them: exit codes and output."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(str(p) for p in (ROOT / "specs").glob("*.circ"))
INVALID = ROOT / "tests" / "fixtures" / "invalid"


def circ(*args, cwd=ROOT):
    command = [sys.executable, "-c", "from circ.cli.main import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd)


def test_check_all_specs_exits_zero():
    result = circ("check", *SPECS)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"{p}: ok" for p in SPECS]
    assert result.stdout == ""


def test_check_reports_diagnostics_and_exits_one():
    path = str(INVALID / "multiple_errors.circ")
    result = circ("check", path, SPECS[0])
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"{path}:3:23: error[E303]: unknown argument `seeds` of mcq()"
    assert lines[1] == "   3 | data clean = mcq(n=8, seeds=1)"
    assert lines[2] == "     |                       ^^^^^"
    assert sum(": error[" in line for line in lines) == 4
    assert "Traceback" not in result.stderr
    assert lines[-1] == f"{SPECS[0]}: ok"


def test_check_of_unreadable_input_is_a_diagnostic(tmp_path):
    binary = tmp_path / "b.circ"
    binary.write_bytes(b"\x00\xff\xfe garbage")
    result = circ("check", str(binary), str(tmp_path / "missing.circ"))
    assert result.returncode == 1
    assert "error[E504]" in result.stderr and "error[E505]" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_two():
    assert circ("check").returncode == 2
    assert circ("plan", SPECS[0], "--format", "yaml").returncode == 2


def test_fmt_check_lists_files_that_would_change_then_fmt_fixes_them(tmp_path):
    messy = tmp_path / "messy.circ"
    shutil.copy(ROOT / "tests" / "fixtures" / "valid" / "messy_layout.circ", messy)
    tidy = tmp_path / "tidy.circ"
    shutil.copy(ROOT / "specs" / "common.circ", tidy)
    result = circ("fmt", "--check", str(messy), str(tidy))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"would reformat {messy}"]
    before = messy.read_text()
    assert circ("fmt", str(messy), str(tidy)).returncode == 0
    assert messy.read_text() != before
    assert tidy.read_text() == (ROOT / "specs" / "common.circ").read_text()
    assert circ("fmt", "--check", str(messy)).returncode == 0


def test_fmt_of_a_syntax_error_exits_one_and_changes_nothing(tmp_path):
    broken = tmp_path / "broken.circ"
    broken.write_text("data clean mcq(n=1)\n")
    result = circ("fmt", str(broken))
    assert result.returncode == 1 and "error[E101]" in result.stderr
    assert broken.read_text() == "data clean mcq(n=1)\n"


def test_plan_formats():
    text = circ("plan", SPECS[0])
    assert text.returncode == 0 and text.stdout.startswith("plan of ")
    as_json = json.loads(circ("plan", SPECS[0], "--format", "json").stdout)
    assert as_json["nodes"][0]["id"] == "model"
    dot = circ("plan", SPECS[0], "--format", "dot").stdout
    assert dot.startswith("digraph plan {")
    failing = circ("plan", str(INVALID / "e401_layer_out_of_range.circ"))
    assert failing.returncode == 1 and "error[E401]" in failing.stderr
