"""`diff_main` and the git driver: operands, formats, exit codes, `REV:PATH` read
through a real git repository, and git calling the driver itself."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from circ.compiler.diff.git_driver import git_driver_main
from circ.compiler.diff.inputs import diff_main

FIXTURES = Path(__file__).parent / "fixtures" / "results_diff"
OLD, NEW = str(FIXTURES / "old.json"), str(FIXTURES / "new.json")

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def test_identical_results_exit_0_and_say_so():
    text, code = diff_main(OLD, OLD, fmt="text", threshold=0.01, color=False)
    assert code == 0
    assert text.splitlines()[-1] == "no differences (0 results differences)"


def test_different_results_exit_1_with_the_flip_in_every_format():
    text, code = diff_main(OLD, NEW, fmt="text", threshold=0.01, color=False)
    assert code == 1
    assert "    - expect faith.value >= 0.8: pass -> FAIL" in text.splitlines()
    assert "    ~ faithfulness faith: 0.93 -> 0.7492 (-0.1808)" in text.splitlines()
    assert "\x1b[" not in text
    markdown, code = diff_main(OLD, NEW, fmt="markdown", threshold=0.01, color=False)
    assert code == 1
    assert "| - | expect faith.value >= 0.8 | `pass` | `FAIL` |" in markdown.splitlines()
    document, code = diff_main(OLD, NEW, fmt="json", threshold=0.01, color=False)
    parsed = json.loads(document)
    assert code == 1 and parsed["different"] is True and parsed["spec"] is None
    flips = [c for c in parsed["results"]["changes"] if c["kind"] == "expectation_flipped"]
    assert [(c["subject"], c["old"], c["new"]) for c in flips] == [
        ("faith.value >= 0.8", True, False), ("dla.total > 2.8", False, True)]
    assert document == json.dumps(parsed, sort_keys=True, indent=2) + "\n"


def test_color_only_when_asked():
    text, _ = diff_main(OLD, NEW, fmt="text", threshold=0.01, color=True)
    assert "\x1b[31m    - expect" not in text
    assert "    \x1b[31m- expect faith.value >= 0.8: pass -> FAIL\x1b[0m" in text.splitlines()


def test_threshold_reaches_the_results_diff():
    near = str(FIXTURES / "same_within_threshold.json")
    assert diff_main(OLD, near, fmt="text", threshold=0.01, color=False)[1] == 0
    text, code = diff_main(OLD, near, fmt="text", threshold=0.001, color=False)
    assert code == 1 and "    ~ dla L0.H0: 0.3 -> 0.3099 (+0.0099)" in text.splitlines()


def test_a_results_directory_is_an_operand(tmp_path):
    (tmp_path / "run").mkdir()
    shutil.copy(NEW, tmp_path / "run" / "results.json")
    assert diff_main(OLD, str(tmp_path / "run"), fmt="json", threshold=0.01, color=False)[1] == 1


@pytest.mark.parametrize("operands, message", [
    (("missing.json", NEW), "missing.json: no such file"),
    ((OLD, "nonesuch:file.json"), "nonesuch:file.json"),
])
def test_unreadable_operands_exit_2(operands, message):
    text, code = diff_main(*operands, fmt="text", threshold=0.01, color=False)
    assert code == 2 and message in text and "Traceback" not in text


def test_bad_json_and_bad_results_exit_2(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"analyses": {"a": ')
    text, code = diff_main(OLD, str(broken), fmt="text", threshold=0.01, color=False)
    assert code == 2 and text.startswith(f"{broken}:1:20: not valid JSON")
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"runs": []}')
    text, code = diff_main(str(wrong), OLD, fmt="text", threshold=0.01, color=False)
    assert (text, code) == (f"{wrong}: not a circ results file (no 'analyses' object)\n", 2)


def test_unknown_format_and_negative_threshold_exit_2():
    assert diff_main(OLD, NEW, fmt="html", threshold=0.01, color=False)[1] == 2
    text, code = diff_main(OLD, NEW, fmt="text", threshold=-0.5, color=False)
    assert code == 2 and "threshold" in text


def test_results_option_wants_spec_operands():
    text, code = diff_main(OLD, NEW, fmt="text", threshold=0.01, color=False, results=(OLD, NEW))
    assert code == 2 and "--results goes with two spec operands" in text


def git(repo: Path, *arguments: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *arguments], capture_output=True, text=True,
                          check=True)
    return done.stdout


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "commit.gpgsign", "false")
    return repo


@needs_git
def test_rev_path_operand_reads_through_git_show(tmp_path, monkeypatch):
    repo = make_repo(tmp_path)
    (repo / "out").mkdir()
    shutil.copy(OLD, repo / "out" / "results.json")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "old results")
    shutil.copy(NEW, repo / "out" / "results.json")
    monkeypatch.chdir(repo / "out")
    expected = diff_main(OLD, NEW, fmt="json", threshold=0.01, color=False)
    text, code = diff_main("HEAD:out/results.json", "results.json", fmt="json", threshold=0.01,
                           color=False)
    assert code == 1
    assert json.loads(text)["results"] == json.loads(expected[0])["results"]
    same, code = diff_main("HEAD:./results.json", OLD, fmt="text", threshold=0.01, color=False)
    assert code == 0
    text, code = diff_main("HEAD~3:out/results.json", OLD, fmt="text", threshold=0.01, color=False)
    assert code == 2 and "HEAD~3" in text


def test_git_driver_prints_the_semantic_diff_of_its_two_files(capsys):
    argv = ["out/results.json", OLD, "a" * 40, "100644", NEW, "b" * 40, "100644"]
    assert git_driver_main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "diff --circ a/out/results.json b/out/results.json"
    assert out[1] == "circ diff a/out/results.json -> b/out/results.json"
    assert "    - expect faith.value >= 0.8: pass -> FAIL" in out


def test_git_driver_added_file_and_wrong_argument_count(capsys):
    argv = ["r.json", "/dev/null", ".", ".", NEW, "b" * 40, "100644"]
    assert git_driver_main(argv) == 0
    out = capsys.readouterr().out
    assert "    + analysis dla: attribute" in out.splitlines()
    assert git_driver_main(["a", "b"]) == 2
    assert "usage: circ diff --git" in capsys.readouterr().err
    assert git_driver_main(["conflicted.circ"]) == 0
    assert capsys.readouterr().out == "* Unmerged path conflicted.circ\n"


@needs_git
def test_git_diff_runs_the_driver_with_its_seven_arguments(tmp_path):
    repo = make_repo(tmp_path)
    (repo / ".gitattributes").write_text("*.json diff=circ\n")
    shutil.copy(OLD, repo / "results.json")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "old")
    shutil.copy(NEW, repo / "results.json")
    driver = (f"'{sys.executable}' -c 'import sys; from circ.compiler.diff.git_driver import "
              "git_driver_main; sys.exit(git_driver_main(sys.argv[1:]))'")
    out = git(repo, "-c", f"diff.circ.command={driver}", "diff", "--ext-diff")
    lines = out.splitlines()
    assert lines[0] == "diff --circ a/results.json b/results.json"
    assert "    + expect dla.total > 2.8: FAIL -> pass" in lines
    assert lines[-1] == "24 results differences"


def test_diff_modules_never_import_torch():
    modules = ("diff.inputs", "diff.git_driver", "diff.format", "diff.spec", "diff.results")
    code = ("import sys; " + "; ".join(f"import circ.compiler.{m}" for m in modules)
            + "; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformer_lens')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


GOLDEN = Path(__file__).parent / "golden" / "diff"
CASES = sorted(path.stem for path in GOLDEN.glob("*.circ") if path.name != "base.circ")
UNCHANGED = {"layout", "included"}
# Extra formats checked for one case each: (case, format, suffix).
FORMAT_CASES = [("analyses", "markdown", "md"), ("analyses", "json", "json"),
                ("expectations", "json", "json")]


def check_golden(expected: Path, actual: str):
    """Compare with the golden file; CIRC_UPDATE_GOLDEN=1 rewrites it instead."""
    if os.environ.get("CIRC_UPDATE_GOLDEN") == "1":
        expected.write_text(actual)
    assert actual == expected.read_text()


@pytest.mark.parametrize("case", CASES)
def test_golden_spec_pair_text(case, monkeypatch):
    monkeypatch.chdir(GOLDEN)
    text, code = diff_main("base.circ", f"{case}.circ", fmt="text", threshold=0.01, color=False)
    assert code == (0 if case in UNCHANGED else 1), text
    check_golden(GOLDEN / f"{case}.txt", text)


@pytest.mark.parametrize("case, fmt, suffix", FORMAT_CASES)
def test_golden_spec_pair_other_formats(case, fmt, suffix, monkeypatch):
    monkeypatch.chdir(GOLDEN)
    text, code = diff_main("base.circ", f"{case}.circ", fmt=fmt, threshold=0.01, color=False)
    assert code == 1
    check_golden(GOLDEN / f"{case}.{suffix}.expected", text)


def test_golden_cases_cover_every_kind_of_spec_change(monkeypatch):
    monkeypatch.chdir(GOLDEN)
    seen = set()
    for case in CASES:
        text, _ = diff_main("base.circ", f"{case}.circ", fmt="json", threshold=0.01, color=False)
        seen |= {change["kind"] for change in json.loads(text)["spec"]}
    expected = {"spec_renamed", "model_changed"} | {
        f"{noun}_{verb}" for noun in ("dataset", "metric", "analysis", "circuit", "category")
        for verb in ("added", "removed", "renamed")} | {
        "dataset_changed", "metric_changed", "analysis_changed", "analysis_nodes_added",
        "analysis_nodes_removed", "circuit_changed", "circuit_nodes_added",
        "circuit_nodes_removed", "category_changed", "category_reordered",
        "expectation_added", "expectation_removed", "expectation_changed",
        "render_added", "render_removed", "render_changed"}
    assert seen == expected


def test_diff_is_symmetric_in_what_it_counts(monkeypatch):
    monkeypatch.chdir(GOLDEN)
    for case in CASES:
        forward = json.loads(diff_main("base.circ", f"{case}.circ", fmt="json", threshold=0.01,
                                       color=False)[0])["spec"]
        backward = json.loads(diff_main(f"{case}.circ", "base.circ", fmt="json", threshold=0.01,
                                        color=False)[0])["spec"]
        swap = {"added": "removed", "removed": "added"}
        flipped = sorted(c["kind"].rsplit("_", 1)[0] + "_" + swap.get(c["kind"].rsplit("_", 1)[1],
                         c["kind"].rsplit("_", 1)[1]) for c in backward)
        assert sorted(c["kind"] for c in forward) == flipped, case


def test_spec_pair_with_results_gives_both_parts(monkeypatch):
    monkeypatch.chdir(GOLDEN)
    text, code = diff_main("base.circ", "renders.circ", fmt="json", threshold=0.01, color=False,
                           results=(OLD, NEW))
    parsed = json.loads(text)
    assert code == 1
    assert [c["kind"] for c in parsed["spec"]] == ["render_added", "render_changed"]
    assert len(parsed["results"]["changes"]) == 24
    text, code = diff_main("base.circ", "layout.circ", fmt="text", threshold=0.01, color=False,
                           results=(OLD, OLD))
    assert code == 0 and text.splitlines()[-1] == \
        "no differences (0 spec changes, 0 results differences)"


def test_a_spec_against_results_is_an_error(monkeypatch):
    monkeypatch.chdir(GOLDEN)
    text, code = diff_main("base.circ", NEW, fmt="text", threshold=0.01, color=False)
    assert code == 2 and text.startswith("cannot compare a spec (base.circ) with a results")


def test_a_spec_that_does_not_compile_gives_its_diagnostics_and_exit_2(tmp_path):
    broken = tmp_path / "broken.circ"
    broken.write_text((GOLDEN / "base.circ").read_text().replace("metric=ld)", "metric=lx)", 1))
    text, code = diff_main(str(GOLDEN / "base.circ"), str(broken), fmt="text", threshold=0.01,
                           color=False)
    assert code == 2
    assert f"{broken}:13:" in text and "error[E201]" in text and "^" in text
    assert "Traceback" not in text


def commit_spec_history(tmp_path: Path) -> Path:
    """A repository whose spec.circ is base.circ at HEAD~1 and renames.circ at HEAD,
    with categories.circ's text uncommitted in the working tree."""
    repo = make_repo(tmp_path)
    (repo / ".gitattributes").write_text("*.circ diff=circ\n")
    for case in ("base", "renames"):
        shutil.copy(GOLDEN / f"{case}.circ", repo / "spec.circ")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", case)
    shutil.copy(GOLDEN / "categories.circ", repo / "spec.circ")
    return repo


@needs_git
def test_rev_path_spec_operands(tmp_path, monkeypatch):
    repo = commit_spec_history(tmp_path)
    monkeypatch.chdir(repo)
    text, code = diff_main("HEAD~1:spec.circ", "HEAD:spec.circ", fmt="text", threshold=0.01,
                           color=False)
    expected = (GOLDEN / "renames.txt").read_text()
    assert code == 1
    assert text.splitlines()[1:] == expected.splitlines()[1:]
    assert text.splitlines()[0] == "circ diff HEAD~1:spec.circ -> HEAD:spec.circ"
    text, code = diff_main("HEAD~1:spec.circ", "spec.circ", fmt="text", threshold=0.01,
                           color=False)
    assert text.splitlines()[1:] == (GOLDEN / "categories.txt").read_text().splitlines()[1:]


@needs_git
def test_git_diff_uses_the_driver_for_specs(tmp_path):
    repo = commit_spec_history(tmp_path)
    driver = (f"'{sys.executable}' -c 'import sys; from circ.compiler.diff.git_driver import "
              "git_driver_main; sys.exit(git_driver_main(sys.argv[1:]))'")
    out = git(repo, "-c", f"diff.circ.command={driver}", "diff", "HEAD~1", "HEAD")
    assert out.splitlines() == ["diff --circ a/spec.circ b/spec.circ",
                                "circ diff a/spec.circ -> b/spec.circ",
                                *(GOLDEN / "renames.txt").read_text().splitlines()[1:]]
    (repo / "spec.circ").write_text("spec \"x\"\nmodel demo\ndata d = mcq(n=0)\n")
    out = git(repo, "-c", f"diff.circ.command={driver}", "diff")
    assert "error[" in out and "line diff follows" in out
    assert "+data d = mcq(n=0)" in out.splitlines()


@needs_git
def test_git_driver_for_an_added_spec_lists_every_definition(tmp_path, capsys):
    argv = ["new.circ", "/dev/null", ".", ".", str(GOLDEN / "circuits.circ"), "b" * 40, "100644"]
    assert git_driver_main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert "    + dataset clean: mcq(labels=\"ABCD\", n=32, seed=0)  (line 6)" in out
    assert "    + expect dla.total > 0  (line 37)" in out
