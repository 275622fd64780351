"""`circ export`: write a run's edge scores and one circuit in another tool's format:
EAP-IG's graph JSON (one file) or MIB's circuit-localisation submission layout (a
folder). No torch is imported. Exit 0 when written, 2 when the results cannot be read
or exported, a flag is missing or wrong, or the output cannot be written, as
`circ render`."""
from __future__ import annotations

import json
from pathlib import Path


def export_path(source: str, fmt: str, output: str | None, circuit: str | None, analysis: str | None,
                stdout, stderr, *, task: str | None = None, model: str | None = None,
                by_budget: bool = False) -> int:
    from circ.compiler.eap_graph import ExchangeError
    from circ.compiler.escape import terminal_text

    path = Path(source)
    if path.is_dir():
        path = path / "results.json"
    try:
        if fmt == "mib" and output is None:
            raise ExchangeError("--format mib writes a folder: give it with -o FOLDER")
        if fmt == "mib" and output == "":
            raise ExchangeError("-o '' names no folder")
        if fmt != "mib" and output is not None and (Path(output).is_dir() or not Path(output).name):
            raise ExchangeError(f"-o {output!r} is " + ("no file name" if not Path(output).name else "a folder")
                                + f": --format {fmt} writes one file, such as -o graph.json")
        if fmt != "mib" and (by_budget or task or model):
            raise ExchangeError("--task, --model and --by-budget go with --format mib")
        files = _converted(_read_results(path), fmt, circuit, analysis, task, model, by_budget)
    except ExchangeError as error:
        print(terminal_text(f"circ: {error}"), file=stderr)
        return 2
    if output is None:
        stdout.write(next(iter(files.values())))
        return 0
    return _write(files, Path(output), fmt, stderr)


def _converted(results: dict, fmt: str, circuit, analysis, task, model, by_budget) -> dict[str, str]:
    """{relative path: text} to write (one unnamed file for eap-ig); any value of the
    wrong type in a hand-edited results file is an ExchangeError."""
    from circ.compiler.eap_graph import ExchangeError, to_eap_ig
    from circ.compiler.mib_layout import submission

    try:
        if fmt == "mib":
            graphs = submission(results, task, model, analysis, circuit, by_budget)
        else:
            graphs = {"": to_eap_ig(results, analysis, circuit)}
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError, RecursionError) as error:
        raise ExchangeError(f"a value in the results is not what circ wrote "
                            f"({type(error).__name__}: {str(error)[:200]})") from None
    return {name: json.dumps(graph, indent=1, allow_nan=False) + "\n" for name, graph in graphs.items()}


def _write(files: dict[str, str], target: Path, fmt: str, stderr) -> int:
    from circ.compiler.escape import terminal_text
    from circ.runtime.results.safe_write import UnsafePath, write_inside

    try:
        for name, text in files.items():
            written = (write_inside(target, name, text) if fmt == "mib"
                       else write_inside(target.parent, target.name, text))
            print(terminal_text(f"wrote {written}"), file=stderr)
    except (UnsafePath, OSError) as error:
        print(terminal_text(f"circ: cannot write {target}: {error}"), file=stderr)
        return 2
    return 0


def _read_results(path: Path) -> dict:
    from circ.compiler.diff.inputs import read_results_file
    from circ.compiler.eap_graph import ExchangeError

    try:
        return read_results_file(path)
    except FileNotFoundError:
        raise ExchangeError(f"{path}: no such file") from None
    except ValueError as error:
        raise ExchangeError(f"{path}: {error}") from None
