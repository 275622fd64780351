"""`circ run`: compile a spec, load its model, execute the plan, write results.json,
the diagrams the spec asks for and report.html (and, with --per-prompt, per_prompt.json
and the report's per-prompt views), print a summary. Exit codes: 0 every expectation holds, 1 one fails
(the hypothesis is refuted), 2 the spec, its data or its model is broken or the run
could not finish. Errors from the spec, its datasets or its model are printed as
diagnostics at the spec line they concern, never as a traceback, and never leave a
partial results file. The run itself goes through `circ.running`, as `circ.run` does.
The output folder is tried with a probe write before anything runs; when writing
there fails after the run, the results are kept in a fresh temporary folder and
the run says where (exit 2)."""
from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from circ.compiler import ir
from circ.compiler.diagnostics import CircError, Diagnostic
from circ.compiler.escape import terminal_text
from circ.running import RUN_ERROR, RunOptions, load, model_from_option, run_loaded
from circ.runtime.execute.resume_store import CACHE_FOLDER
from circ.runtime.results.safe_write import probe_folder

HOLDS, REFUTED, BROKEN = 0, 1, 2  # exit codes
NOT_WRITTEN = BROKEN  # the output folder cannot hold the results: the run could not finish


def _override(model: str | None, device: str | None, device_map: str | None = None):
    """`--model`, `--device` and `--device-map` as a change to the spec's own model
    (its dtype and numerics are kept), or None."""
    if model is None and device is None and device_map is None:
        return None

    def change(base: ir.Model) -> ir.Model:
        if model is not None:
            base = model_from_option(model, base)
        if device_map is not None:  # a map file is named relative to the current folder
            base = replace(base, device_map=str(Path(device_map).resolve()) if Path(device_map).is_file()
                           else device_map)
        return replace(base, device=device) if device else base

    return change


def run_spec(path: str, out_dir: str | None, *, model: str | None, device: str | None,
             batch_size: int, seed: int, trust_remote_code: bool, progress: bool,
             resume: bool = False, device_map: str | None = None, executor: str = "local",
             address: str | None = None, include_outside: bool = False, per_prompt: bool = False,
             stdout=sys.stdout,
             stderr=sys.stderr) -> int:
    from circ.compiler.api import compile_file

    started = time.monotonic()
    try:
        spec = compile_file(path, model_override=_override(model, device, device_map),
                            include_outside=include_outside)
    except CircError as error:
        print(error.render(), file=stderr)
        return BROKEN
    out = Path(out_dir) if out_dir else Path("out") / Path(path).stem
    options = RunOptions(batch_size=batch_size, seed=seed, progress=progress, log=stderr, store_dir=out,
                         resume=resume, executor=executor, address=address,
                         trust_remote_code=trust_remote_code, include_outside=include_outside,
                         started=started)
    try:
        probe_folder(out)
    except OSError as error:
        print(terminal_text(f"circ: cannot write to the output folder {out}: {error.strerror or error}; "
                            "nothing was run"), file=stderr)
        return NOT_WRITTEN
    try:
        return _run(spec, out, options, stdout, stderr, per_prompt)
    except CircError as error:
        print(error.render(), file=stderr)
        # E600: the model or a dataset is broken and the run could not finish; any other
        # code is the spec's own error, found once a shapeless model has loaded: broken too
        return BROKEN
    except Exception as error:  # noqa: BLE001 - never a traceback: located at the spec's first line
        where = ir.Span(spec.path, 1, 1, 1, 1)
        print(Diagnostic(RUN_ERROR, f"cannot finish the run: {type(error).__name__}: {str(error)[:500]}",
                         where).format(None), file=stderr)
        return BROKEN
    except KeyboardInterrupt:
        print(f"circ: interrupted; no results written (finished analyses, if any, are kept in "
              f"{out / CACHE_FOLDER}: `circ run --resume` reuses them)", file=stderr)
        return 130


def _run(spec: ir.Spec, out: Path, options: RunOptions, stdout, stderr, per_prompt: bool = False) -> int:
    from circ.runtime.render.summary import summarize
    from circ.runtime.results.assemble import spec_sources
    from circ.runtime.results.write import write_results

    sources = spec_sources(spec)
    loaded = load(spec, sources, trust_remote_code=options.trust_remote_code)
    finished = run_loaded(spec, loaded, options, sources=sources)
    if options.resume:
        print(f"circ: reused {finished.reused} finished analyses from {out / CACHE_FOLDER}", file=stderr)
    results = finished.results
    renders = tuple((r.circuit, r.path) for r in finished.spec.renders)
    kept = {"per_prompt": finished.per_prompt, "prompts": finished.prompts} if per_prompt else {}
    written = _keep(results, sources.get(spec.path, ""), out, renders, stderr, kept)
    print(summarize(results), file=stdout, end="")
    if written is None:
        return NOT_WRITTEN
    if per_prompt:
        write_results(written.parent / "per_prompt.json", finished.per_prompt)
    print(terminal_text(f"results: {written}"), file=stdout)
    if written.parent != out:
        return NOT_WRITTEN
    failed = [e for e in results["expectations"] if not e["passed"]]
    return REFUTED if failed else HOLDS


def _keep(results: dict, spec_text: str, out: Path, renders: tuple, stderr, per_prompt: dict) -> Path | None:
    """Write the run's files into `out`, or, when results.json cannot be written
    there, into a fresh temporary folder; the path of results.json (None when
    neither folder could hold it). `per_prompt` holds write_outputs' per_prompt and
    prompts with --per-prompt, for the report's per-prompt views."""
    from circ.runtime.render.outputs import write_outputs

    for folder in (out, None):
        folder = folder or Path(tempfile.mkdtemp(prefix="circ-results-"))
        try:
            written, problems = write_outputs(results, spec_text, folder, renders, **per_prompt)
        except OSError as error:
            print(terminal_text(f"circ: cannot write {folder / 'results.json'}: {error.strerror or error}"),
                  file=stderr)
            continue
        for problem in problems:
            print(terminal_text(f"circ: {problem}"), file=stderr)
        if folder != out:
            print(terminal_text(f"circ: the results are kept in {folder} instead of {out}"), file=stderr)
        return written
    return None
