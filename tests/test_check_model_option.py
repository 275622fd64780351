"""`circ check --model M` checks ranges against the model `circ run --model M` uses,
read from its config.json, without importing torch."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONE_LAYER = ROOT / "tests" / "fixtures" / "models" / "one_layer"  # 1 layer, 2 heads, d_head 8
SPEC = "data clean = mcq(n=4)\nanalysis attn = attention(L1.H3, on=clean)\n"


def circ(*args, cwd):
    code = ("import sys; from circ.cli.main import main\n"
            "try:\n    main()\nfinally:\n    assert 'torch' not in sys.modules")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd)


def test_ranges_are_checked_against_the_model_given(tmp_path):
    (tmp_path / "s.circ").write_text(SPEC)
    assert circ("check", "s.circ", cwd=tmp_path).returncode == 0  # the demo model has 2 layers
    result = circ("check", "--model", str(ONE_LAYER), "s.circ", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("s.circ:2:27: error[E401]: layer 1 is out of range: the model has 1 layer")


def test_a_relative_model_folder_is_read_from_the_current_folder_as_run_reads_it(tmp_path):
    (tmp_path / "s.circ").write_text(SPEC.replace("L1.H3", "L0.H1"))
    relative = Path("..") / ONE_LAYER.relative_to(ROOT)
    result = circ("check", "--model", str(relative), str(tmp_path / "s.circ"), cwd=ROOT / "tests")
    assert result.returncode == 0, result.stderr


def test_a_model_that_is_nowhere_is_a_diagnostic_at_the_model_line(tmp_path):
    (tmp_path / "s.circ").write_text("# a comment\nmodel demo\n" + SPEC)
    result = circ("check", "--model", "org/absent-model", "s.circ", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("s.circ:2:1: error[E506]: `org/absent-model` is not in the local")
    assert "Traceback" not in result.stderr
