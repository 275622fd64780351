"""`circ export`: write a run's edge scores and one circuit in another tool's format
(EAP-IG's graph JSON). No torch is imported. Exit 0 when written, 2 when the results
cannot be read or exported or the output cannot be written, as `circ render`."""
from __future__ import annotations

import json
from pathlib import Path

RESULTS_LIMIT = 256 << 20  # bytes of a results.json read for export


def export_path(source: str, fmt: str, output: str | None, circuit: str | None, analysis: str | None,
                stdout, stderr) -> int:
    from circ.compiler.eap_graph import ExchangeError, to_eap_ig
    from circ.runtime.results.safe_write import UnsafePath, write_inside

    path = Path(source)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = _read_results(path)
        text = json.dumps(to_eap_ig(results, analysis, circuit), indent=1) + "\n"
    except ExchangeError as error:
        print(f"circ: {error}", file=stderr)
        return 2
    if output is None:
        stdout.write(text)
        return 0
    target = Path(output)
    try:
        written = write_inside(target.parent, target.name, text)
    except (UnsafePath, OSError) as error:
        print(f"circ: cannot write {output}: {error}", file=stderr)
        return 2
    print(f"wrote {written}", file=stderr)
    return 0


def _read_results(path: Path) -> dict:
    from circ.compiler.bounded_read import read_json
    from circ.compiler.eap_graph import ExchangeError

    try:
        results = read_json(path, RESULTS_LIMIT)
    except FileNotFoundError:
        raise ExchangeError(f"{path}: no such file") from None
    except ValueError as error:
        raise ExchangeError(f"{path}: not a results.json file ({error})") from None
    if not isinstance(results, dict):
        raise ExchangeError(f"{path}: not a results.json file (not a JSON object)")
    return results
