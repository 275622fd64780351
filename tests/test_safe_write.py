"""Nothing is written outside the output folder or through a symbolic link, and no
result is lost: every file circ writes (results.json, diagrams, report.html, the
resume cache, `circ render -o`, `circ fmt`) is refused through a link planted in
the output folder (as a pull request could commit into `out/SPEC/`), an output
folder that cannot be written stops the run before it starts, a write failure
after the run keeps the results elsewhere and says where, and files get the
user's umask."""
import io
import json
import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import mcq_examples, write_jsonl

from circ.cli.main import main
from circ.cli.run import run_spec
from circ.runtime.results import safe_write
from circ.runtime.results.safe_write import UnsafePath, probe_folder, read_inside, write_inside

SPEC = '''model hf("{model}")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads, on=clean, metric=ld)
circuit c = [L0.H1, L1.H2]
render c to "{target}"
'''
VICTIM_TEXT = "precious\n"


def run(spec_path, out, **options):
    err = io.StringIO()
    code = run_spec(str(spec_path), None if out is None else str(out), model=None, device=None, batch_size=4,
                    seed=0, trust_remote_code=False, progress=False, stdout=io.StringIO(), stderr=err, **options)
    return code, err.getvalue()


@pytest.fixture
def project(tmp_path, tiny_dir):
    """A spec, its data, an output folder path, and outside it a file and a folder
    that links may point at."""
    write_jsonl(tmp_path / "data.jsonl", mcq_examples(4, seed=3))

    def make(target="c.dot"):
        (tmp_path / "s.circ").write_text(SPEC.format(model=tiny_dir, target=target))
        return tmp_path / "s.circ"

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text(VICTIM_TEXT)
    return make, tmp_path / "out", outside


def untouched(outside):
    return sorted(p.name for p in outside.iterdir()) == ["victim.txt"] and \
        (outside / "victim.txt").read_text() == VICTIM_TEXT


@pytest.mark.parametrize("planted, target", [
    ("c.dot", "c.dot"),                      # the diagram
    ("report.html", "c.dot"),                # the report
])
def test_a_linked_file_in_the_output_folder_is_not_written_through(project, planted, target):
    make, out, outside = project
    out.mkdir()
    (out / planted).symlink_to(outside / "victim.txt")
    code, stderr = run(make(target), out)
    assert untouched(outside)
    assert "symbolic link" in stderr and "Traceback" not in stderr
    assert (out / planted).is_symlink() and (out / "results.json").is_file()
    assert code == 0


def test_a_linked_subfolder_of_the_output_folder_is_not_followed(project):
    make, out, outside = project
    out.mkdir()
    (out / "sub").symlink_to(outside, target_is_directory=True)
    code, stderr = run(make("sub/c.dot"), out)
    assert untouched(outside) and "symbolic link" in stderr
    assert code == 0 and (out / "results.json").is_file()


def test_a_linked_resume_cache_is_neither_written_nor_read(project):
    make, out, outside = project
    out.mkdir()
    (out / ".circ-cache").symlink_to(outside, target_is_directory=True)
    code, stderr = run(make(), out)
    assert untouched(outside) and "cannot keep finished results" in stderr
    code, stderr = run(make(), out, resume=True)
    assert code == 0 and "reused 0 finished analyses" in stderr and untouched(outside)


def test_a_linked_results_file_keeps_the_results_elsewhere(project):
    make, out, outside = project
    out.mkdir()
    (out / "results.json").symlink_to(outside / "victim.txt")
    code, stderr = run(make(), out)
    assert code == 2 and untouched(outside)
    kept = Path(stderr.split("the results are kept in ")[1].split(" instead")[0])
    assert kept != out and json.loads((kept / "results.json").read_text())["analyses"]["dla"]["values"]
    assert (kept / "report.html").is_file() and (kept / "c.dot").is_file()


@pytest.mark.parametrize("linked", ["out", "out/s"])
def test_a_linked_default_output_folder_stops_the_run(project, monkeypatch, linked):
    """The default output folder `out/SPEC` lies in the current folder, a checkout a
    pull request fills: a link anywhere on that way is refused before anything runs."""
    make, _, outside = project
    spec = make()
    monkeypatch.chdir(spec.parent)
    if linked == "out/s":
        Path("out").mkdir()
    Path(linked).symlink_to(outside, target_is_directory=True)
    code, stderr = run(spec, None)
    assert code == 2 and "symbolic link" in stderr and "nothing was run" in stderr
    assert untouched(outside)


def test_an_output_folder_that_cannot_be_made_stops_the_run(project):
    make, out, _ = project
    out.write_text("a file, not a folder\n")
    code, stderr = run(make(), out / "sub")
    assert code == 2 and f"cannot write to the output folder {out / 'sub'}" in stderr
    assert "nothing was run" in stderr and "Traceback" not in stderr


def test_a_full_output_folder_stops_the_run(project, monkeypatch):
    make, out, _ = project

    def full_disk(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    code, stderr = run(make(), out)
    assert code == 2 and "No space left on device" in stderr and "nothing was run" in stderr
    assert os.listdir(out) == []  # the probe file is removed


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not bind root")
def test_a_read_only_output_folder_stops_the_run(project):
    make, out, _ = project
    out.mkdir(mode=0o555)
    code, stderr = run(make(), out)
    assert code == 2 and "nothing was run" in stderr


def test_a_write_failure_after_the_run_keeps_the_results(project, monkeypatch):
    """The disk fills up after the probe: the results go to a fresh temporary folder."""
    make, out, _ = project
    real = safe_write.write_inside

    def full_disk(root, relative, data, **options):
        if Path(root) == out:
            raise OSError(28, "No space left on device")
        return real(root, relative, data, **options)

    monkeypatch.setattr("circ.runtime.results.write.write_inside", full_disk)
    code, stderr = run(make(), out)
    assert code == 2 and "No space left on device" in stderr
    kept = Path(stderr.split("the results are kept in ")[1].split(" instead")[0])
    results = json.loads((kept / "results.json").read_text())
    assert set(results["analyses"]["dla"]["values"]) >= {f"L{l}.H{h}" for l in range(2) for h in range(4)}


def test_files_and_folders_follow_the_umask(project):
    make, out, _ = project
    previous = os.umask(0o022)
    try:
        code, _ = run(make("sub/c.dot"), out)
    finally:
        os.umask(previous)
    assert code == 0
    written = [out / "results.json", out / "report.html", out / "sub" / "c.dot",
               *sorted((out / ".circ-cache").glob("*.json"))]
    assert len(written) == 4
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {"0o644"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in (out, out / "sub", out / ".circ-cache")} == {"0o755"}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".circ-probe")]


# --------------------------------------------------------------------------- the module
def test_paths_that_leave_the_root_are_refused(tmp_path):
    for relative in ("../x", "/etc/x", "a/../../x", ""):
        with pytest.raises(UnsafePath):
            write_inside(tmp_path, relative, "x")
    assert sorted(os.listdir(tmp_path)) == []


def test_reads_refuse_links_and_are_bounded(tmp_path):
    write_inside(tmp_path, "a.json", "12345")
    (tmp_path / "link.json").symlink_to(tmp_path / "a.json")
    assert read_inside(tmp_path, "a.json", 5) == b"12345"
    with pytest.raises(UnsafePath):
        read_inside(tmp_path, "link.json", 5)
    with pytest.raises(OSError, match="larger than 4 bytes"):
        read_inside(tmp_path, "a.json", 4)


def test_a_link_swapped_in_as_the_root_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("elsewhere").mkdir()
    Path("root").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    for attempt in (lambda: probe_folder("root"), lambda: write_inside("root", "f.txt", "x"),
                    lambda: write_inside(tmp_path / "root", "f.txt", "x")):
        with pytest.raises(UnsafePath):
            attempt()
    assert os.listdir("elsewhere") == []


# --------------------------------------------------------------------------- other commands
def test_render_does_not_write_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    (tmp_path / "s.circ").write_text("model demo\ncircuit c = [L0.H1]\n")
    (tmp_path / "c.dot").symlink_to(victim)
    result = CliRunner().invoke(main, ["render", str(tmp_path / "s.circ"), "-o", str(tmp_path / "c.dot")])
    assert result.exit_code == 2 and "symbolic link" in result.output
    assert victim.read_text() == VICTIM_TEXT


def test_fmt_does_not_rewrite_through_a_link_and_keeps_the_mode(tmp_path):
    victim = tmp_path / "victim.circ"
    victim.write_text("model   demo\n")
    (tmp_path / "link.circ").symlink_to(victim)
    result = CliRunner().invoke(main, ["fmt", str(tmp_path / "link.circ")])
    assert result.exit_code == 1 and "symbolic link" in result.output
    assert victim.read_text() == "model   demo\n"
    victim.chmod(0o640)
    result = CliRunner().invoke(main, ["fmt", str(victim)])
    assert result.exit_code == 0 and victim.read_text() == "model demo\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.circ", "victim.circ"]


def test_every_write_goes_through_safe_write():
    """No module but safe_write opens a file for writing, makes a folder or renames
    one into place (the demo model's training tool writes its own weights folder)."""
    root = Path(__file__).resolve().parent.parent
    writes = re.compile(r"write_text\(|write_bytes\(|\.mkdir\(|os\.makedirs|os\.mkdir\(|mkstemp|NamedTemporaryFile|"
                        r"open\([^)]*['\"](w|a|x)b?\+?['\"]|os\.replace|os\.rename|shutil\.(copy|move)")
    allowed = {Path("runtime/results/safe_write.py"), Path("runtime/models/demo_model/train.py"),
               Path("runtime/models/demo_model/tokenizer.py")}
    offenders = []
    for folder in ("circ", "compiler", "runtime", "grammar"):
        for path in (root / folder).rglob("*.py"):
            if path.relative_to(root) in allowed:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if writes.search(line):
                    offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []
