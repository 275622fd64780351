"""Time `circ check` as a whole process on every spec in specs/, and check that
the compiler's import stays light (no torch, no transformer_lens, no networkx).

Usage: .venv/bin/python bench/bench_check.py [--runs N] [--target SECONDS]
Exits 1 when the median time of a spec exceeds the target (default 0.3 s).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformer_lens", "networkx")
IMPORT_PROBE = (
    "import sys, time; t = time.perf_counter(); import circ.compiler.api, circ.cli.main; "
    "print(time.perf_counter() - t); "
    f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
)


def circ_command() -> list[str]:
    script = Path(sys.executable).parent / "circ"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from circ.cli.main import main; main()"]


def time_check(spec: Path, runs: int) -> float:
    """Median wall time of `circ check SPEC`, the whole process."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(circ_command() + ["check", str(spec)], capture_output=True,
                                text=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"circ check {spec} failed:\n{result.stderr}")
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.3)
    options = parser.parse_args()

    probe = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True,
                           cwd=ROOT, check=True).stdout.splitlines()
    import_seconds, heavy = float(probe[0]), probe[1] if len(probe) > 1 else ""
    print(f"import circ.compiler.api + circ.cli.main: {import_seconds:.3f} s; "
          f"heavy modules loaded: {heavy or 'none'}")

    slow = bool(heavy)
    for spec in sorted((ROOT / "specs").glob("*.circ")):
        seconds = time_check(spec, options.runs)
        verdict = "ok" if seconds <= options.target else "SLOW"
        slow |= seconds > options.target
        print(f"circ check {spec.relative_to(ROOT)}: {seconds:.3f} s (median of {options.runs}) {verdict}")
    print(f"target: {options.target:.2f} s per spec, no heavy imports: {'FAIL' if slow else 'PASS'}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
