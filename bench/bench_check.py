"""Time `circ check` as a whole process on every spec in specs/, and check that
the compiler's import stays light (no torch, no transformer_lens, no networkx).
With `--scale`, time it instead on generated specs that must take linear time:
100,000 statements (target 10 s), 20,000 errors on separate lines and 20,000 on one
line (target 5 s each); `circ diff` of 20,000 statements against the same with one
analysis added (target 10 s); `circ fmt --check` of 20,000 statements with a comment
each (target 5 s). Each also at a fifth of the size, to show the growth, with each
run's peak memory.

Usage: .venv/bin/python bench/bench_check.py [--runs N] [--target SECONDS] [--scale]
Exits 1 when a time exceeds its target (default 0.3 s per spec in specs/).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
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


HEADER = ('model demo\ndata clean = mcq(n=4, labels="ABCD", seed=0)\n'
          "metric ld = logit_diff(answer, wrong) at last\n")


def _statements(n: int) -> str:
    return HEADER + "".join(f"analysis a{i} = attribute(heads, on=clean, metric=ld)\n"
                            for i in range(n))


SCALE_CASES = (  # (command, what, how many, a spec with that many, target seconds, exit status)
    ("check", "statements", 100_000, _statements, 10.0, 0),
    ("check", "errors on separate lines", 20_000,
     lambda n: "model demo\n" + "".join(f"data d{i} = nope{i}(n=1)\n" for i in range(n)), 5.0, 1),
    ("check", "errors on one line", 20_000,
     lambda n: "model demo\n" + " ".join(f"data d{i} = nope{i}(n=1)" for i in range(n)) + "\n",
     5.0, 1),
    # against the same spec with one analysis added
    ("diff", "statements", 20_000, _statements, 10.0, 1),
    # exits 1: the `=` are not aligned
    ("fmt --check", "statements with a comment each", 20_000,
     lambda n: _statements(n).replace("metric=ld)\n", "metric=ld)  # note\n"), 5.0, 1),
)
ADDED = "analysis added = attribute(heads, on=clean, metric=ld)\n"


def time_once(arguments: list[str], status: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak resident MiB) of one `circ ARGUMENTS`, the
    whole process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(circ_command() + arguments, stdout=out, stderr=err, cwd=ROOT)
        _, code, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(code)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if process.returncode != status or "Traceback" in stderr:
        raise SystemExit(f"circ {' '.join(arguments)} exited {process.returncode}:\n"
                         f"{stderr[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def scale() -> int:
    """Time the generated specs of SCALE_CASES; 1 when one exceeds its target."""
    slow = False
    with tempfile.TemporaryDirectory() as folder:
        for command, what, count, text, target, status in SCALE_CASES:
            times = {}
            for n in (count // 5, count):
                spec = Path(folder) / f"scale_{n}.circ"
                spec.write_text(text(n), encoding="utf-8")
                arguments = command.split() + [str(spec)]
                if command == "diff":
                    changed = Path(folder) / f"scale_{n}_changed.circ"
                    changed.write_text(text(n) + ADDED, encoding="utf-8")
                    arguments.append(str(changed))
                times[n] = time_once(arguments, status)
                wall, cpu, memory = times[n]
                print(f"circ {command}, {n:,} {what}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
                      f"{memory:.0f} MiB peak memory")
            small, large = times[count // 5][1], times[count][1]
            verdict = "ok" if times[count][0] <= target else "SLOW"
            slow |= verdict == "SLOW"
            print(f"  5x the size took {large / max(small, 1e-9):.1f}x the CPU time; "
                  f"target {target:.0f} s wall: {verdict}")
    load = Path("/proc/loadavg")
    if load.exists():  # others' work on the machine stretches the wall times
        print("load average (1, 5, 15 min):", *load.read_text().split()[:3])
    return 1 if slow else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.3)
    parser.add_argument("--scale", action="store_true",
                        help="time the large generated specs instead")
    options = parser.parse_args()
    if options.scale:
        return scale()

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
