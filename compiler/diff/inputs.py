"""Operands of `circ diff`: read them, tell specs from results, compare them.

An operand is a file path, a directory holding `results.json`, or `REV:PATH`, read
through `git show REV:PATH` (PATH from the repository root, or `./`/`../` relative
to the current directory, as git reads it). A path ending in `.circ` is a spec, one
ending in `.json` (or a directory) is results; other files are told apart by
content (a JSON object is results). Two specs give a spec diff, two results files
a results diff; two specs with `results=(OLD_JSON, NEW_JSON)` give both.
`diff_main` returns the output and the exit status: 0 no difference, 1 difference,
2 error (an operand that does not compile gives the compiler's diagnostics).
"""
from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from circ.compiler import ir
from circ.compiler.api import compile_source
from circ.compiler.diagnostics import CircError
from circ.compiler.diff.format import FORMATS, DiffReport, format_report
from circ.compiler.diff.results import DEFAULT_THRESHOLD, ResultsError, diff_results
from circ.compiler.diff.spec import diff_specs
from circ.compiler.escape import terminal_text

SPEC, RESULTS = "spec", "results"


class DiffInputError(Exception):
    """An operand that cannot be read, parsed or compared; the message says why.
    `escaped`: the message is already fit for a terminal (rendered diagnostics)."""

    def __init__(self, message: str, escaped: bool = False):
        super().__init__(message)
        self.escaped = escaped


@dataclass(frozen=True)
class Operand:
    """One side of a diff: its text, where it lives (for relative paths inside it
    and for diagnostics), what it is, and the label the user wrote."""

    label: str
    text: str
    path: str
    kind: str


def operand_kind(path: str, text: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".circ":
        return SPEC
    if suffix == ".json":
        return RESULTS
    return RESULTS if text.lstrip().startswith("{") else SPEC


def _git(arguments: list[str], cwd: str | None = None) -> str:
    try:
        done = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, check=False)
    except OSError as error:
        raise DiffInputError(f"cannot run git: {error}") from error
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip() or f"git {arguments[0]} failed"
        raise DiffInputError(message)
    return done.stdout.decode("utf-8", "replace")


def _decode(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DiffInputError(
            f"{label}: file is not UTF-8 ({error.reason} at byte {error.start})") from None


def _read_git(label: str, revision: str, path: str) -> Operand:
    if revision.startswith("-") or not path:
        raise DiffInputError(f"{label}: not a file and not a REV:PATH operand")
    try:
        text = _git(["show", f"{revision}:{path}"])
        if path.startswith(("./", "../")):
            where = Path.cwd() / path
        else:
            where = Path(_git(["rev-parse", "--show-toplevel"]).strip()) / path
    except DiffInputError as error:
        raise DiffInputError(f"{label}: {error}") from None
    return Operand(label, text, str(where), operand_kind(path, text))


def read_operand(operand: str) -> Operand:
    """Read a path, a results directory, or a `REV:PATH` operand."""
    path = Path(operand)
    if path.is_dir():
        path = path / "results.json"
        if not path.is_file():
            raise DiffInputError(f"{operand}: directory has no results.json")
    if path.is_file():
        try:
            text = _decode(path.read_bytes(), operand)
        except OSError as error:
            raise DiffInputError(f"{operand}: cannot read file ({error.strerror})") from None
        return Operand(operand, text, str(path), operand_kind(str(path), text))
    if ":" in operand:
        revision, _, git_path = operand.partition(":")
        return _read_git(operand, revision, git_path)
    raise DiffInputError(f"{operand}: no such file")


def compile_operand(operand: Operand) -> ir.Spec:
    """The checked Spec of a spec operand; DiffInputError with diagnostics if not."""
    try:
        return compile_source(operand.text, path=operand.path)
    except CircError as error:
        raise DiffInputError(error.render(), escaped=True) from None


def results_json(text: str):
    """The JSON value of a results file's text, as circ writes them: finite numbers
    only. ValueError says why not (json.JSONDecodeError for text that is not JSON; NaN
    or a number out of range, an integer too long to convert, nesting too deep)."""
    def finite(number: str) -> float:
        value = float(number)
        if math.isinf(value):
            raise ValueError(f"number {number[:40]} is out of range")
        return value

    def refuse(constant: str):
        raise ValueError(f"{constant} is not a number circ writes")

    try:
        return json.loads(text, parse_float=finite, parse_constant=refuse)
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None


def read_results_file(path: Path) -> dict:
    """The results.json at `path`, read with a size limit (`bounded_read`) and parsed as
    `results_json` does; FileNotFoundError, or ValueError with a one-line reason."""
    from circ.compiler.bounded_read import RESULTS_LIMIT, read_limited

    try:
        text = read_limited(path, RESULTS_LIMIT).decode("utf-8")
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"cannot read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError("not a results.json file (not UTF-8)") from None
    try:
        results = results_json(text)
    except ValueError as error:
        raise ValueError(f"not a results.json file ({str(error).splitlines()[0][:300]})") from None
    if not isinstance(results, dict):
        raise ValueError("not a results.json file (not a JSON object)")
    return results


def load_results(operand: Operand) -> dict:
    try:
        return results_json(operand.text)
    except json.JSONDecodeError as error:
        raise DiffInputError(
            f"{operand.label}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}") from None
    except ValueError as error:
        raise DiffInputError(f"{operand.label}: {str(error)[:300]}") from None


def _pair(old: Operand, new: Operand, wanted: str | None = None) -> str:
    if old.kind != new.kind:
        raise DiffInputError(
            f"cannot compare a {old.kind} ({old.label}) with a {new.kind} ({new.label}): "
            "give two specs, two results files, or two specs with --results OLD NEW")
    if wanted is not None and old.kind != wanted:
        raise DiffInputError(f"--results takes two results files, not {old.label} and {new.label}")
    return old.kind


def build_report(old: str, new: str, *, threshold: float = DEFAULT_THRESHOLD,
                 results: tuple[str, str] | None = None) -> DiffReport:
    """Read and compare the operands; raises DiffInputError on any bad input."""
    old_operand, new_operand = read_operand(old), read_operand(new)
    if _pair(old_operand, new_operand) == RESULTS:
        if results is not None:
            raise DiffInputError("--results goes with two spec operands; "
                                 "to compare results alone, give them as OLD and NEW")
        return DiffReport(old, new, results=_results_diff(old_operand, new_operand, threshold))
    changes = diff_specs(compile_operand(old_operand), compile_operand(new_operand))
    if results is None:
        return DiffReport(old, new, spec_changes=changes)
    old_results, new_results = (read_operand(item) for item in results)
    _pair(old_results, new_results, RESULTS)
    renames = {section: {c.old: c.new for c in changes if c.kind == f"{kind}_renamed"}
               for section, kind in (("analyses", "analysis"), ("circuits", "circuit"))}
    return DiffReport(old, new, changes, _results_diff(old_results, new_results, threshold, renames))


def _results_diff(old: Operand, new: Operand, threshold: float, renames: dict | None = None):
    try:
        return diff_results(load_results(old), load_results(new), threshold,
                            labels=(old.label, new.label), renames=renames)
    except ResultsError as error:
        raise DiffInputError(str(error)) from None


def diff_main(old: str, new: str, *, fmt: str = "text", threshold: float = DEFAULT_THRESHOLD,
              color: bool = False, results: tuple[str, str] | None = None) -> tuple[str, int]:
    """`circ diff OLD NEW`: the output and the exit status (0 same, 1 different,
    2 error; on error the output is the message, for stderr)."""
    if fmt not in FORMATS:
        return f"error: unknown format {fmt!r}: choose one of {', '.join(FORMATS)}\n", 2
    try:
        report = build_report(old, new, threshold=threshold, results=results)
    except DiffInputError as error:
        message = str(error).rstrip()
        return f"{message if error.escaped else terminal_text(message)}\n", 2
    return format_report(report, fmt, color), 1 if report.different else 0
