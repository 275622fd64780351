"""`circ run`: compile a spec, load its model, execute the plan, write results.json,
the diagrams the spec asks for and report.html, print a summary; exit 1 when an
expectation fails. Errors from the spec, its datasets or its model are printed as
diagnostics at the spec line they concern, never as a traceback, and never leave a
partial results file."""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from circ.compiler import ir
from circ.compiler.diagnostics import CircError, Diagnostic

RUN_ERROR = "E600"


def model_from_option(text: str, base: ir.Model) -> ir.Model:
    """`--model`: `demo`, a local Hugging Face directory, a .gguf file, or a name in
    the local Hugging Face cache; the spec's dtype, device and numerics are kept."""
    from dataclasses import replace

    if text == "demo":
        return replace(base, source="demo", location=None)
    path = Path(text)
    if path.suffix == ".gguf":
        return replace(base, source="gguf", location=str(path.resolve()))
    if path.is_dir():
        return replace(base, source="hf", location=str(path.resolve()))
    return replace(base, source="cache", location=text)


def _override(path: str, model: str | None, device: str | None) -> ir.Model | None:
    from dataclasses import replace

    from circ.compiler.api import compile_file

    if model is None and device is None:
        return None
    base = compile_file(path).model
    if model is not None:
        base = model_from_option(model, base)
    return replace(base, device=device) if device else base


def run_spec(path: str, out_dir: str | None, *, model: str | None, device: str | None,
             batch_size: int, seed: int, trust_remote_code: bool, progress: bool,
             stdout=sys.stdout, stderr=sys.stderr) -> int:
    from circ.compiler.api import compile_file

    started = time.monotonic()
    try:
        spec = compile_file(path, model_override=_override(path, model, device))
    except CircError as error:
        print(error.render(), file=stderr)
        return 1
    out = Path(out_dir) if out_dir else Path("out") / Path(path).stem
    try:
        return _run(spec, path, out, batch_size, seed, trust_remote_code, progress, started,
                    stdout, stderr)
    except CircError as error:
        print(error.render(), file=stderr)
        return 1
    except KeyboardInterrupt:
        print("circ: interrupted; no results written", file=stderr)
        return 130


def _run(spec, path, out, batch_size, seed, trust_remote_code, progress, started, stdout, stderr) -> int:
    import torch

    from circ.compiler.api import compile_file, plan
    from circ.runtime.executor import Executor, RunError, Settings
    from circ.runtime.models import ModelError, load_model
    from circ.runtime.results import assemble, spec_sources
    from circ.runtime.results_io import write_results
    from circ.runtime.summary import summarize

    sources = spec_sources(spec)
    torch.manual_seed(seed)
    try:
        loaded = load_model(spec.model, spec_dir=Path(spec.path).parent,
                            trust_remote_code=trust_remote_code)
    except ModelError as error:
        print(_diagnostic(spec.model.span, str(error), sources), file=stderr)
        return 1
    if spec.shape != loaded.shape:
        spec = compile_file(path, model_override=spec.model, shape=loaded.shape)
    settings = Settings(batch_size=batch_size, seed=seed, show_progress=progress, log=stderr)
    executor = Executor(spec, plan(spec), loaded, settings, sources)
    try:
        executor.run()
    except RunError as error:
        print(_diagnostic(error.span, error.message, sources), file=stderr)
        return 1
    timing = {"started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "seconds": round(time.monotonic() - started, 3)}
    results = assemble(executor, spec, loaded, settings, sources.get(spec.path, ""), timing)
    out.mkdir(parents=True, exist_ok=True)
    write_results(out / "results.json", results)
    _write_pictures(spec, results, sources.get(spec.path, ""), out, stderr)
    print(summarize(results), file=stdout, end="")
    print(f"results: {out / 'results.json'}", file=stdout)
    failed = [e for e in results["expectations"] if not e["passed"]]
    return 1 if failed else 0


def _write_pictures(spec, results: dict, spec_text: str, out: Path, stderr) -> None:
    from circ.runtime.diagram import circuit_dot
    from circ.runtime.graphviz import RenderError, inline_svg, render
    from circ.runtime.report import write_report

    for request in spec.renders:
        try:
            render(circuit_dot(results, request.circuit), out / request.path)
        except RenderError as error:
            print(f"circ: {error}", file=stderr)
    diagram = None
    if results.get("circuit"):
        try:
            diagram = inline_svg(circuit_dot(results))
        except RenderError as error:
            print(f"circ: report without a diagram: {error}", file=stderr)
    write_report(results, spec_text, out / "report.html", diagram_svg=diagram)


def _diagnostic(span: ir.Span, message: str, sources: dict) -> str:
    return Diagnostic(RUN_ERROR, message, span).format(sources.get(span.path))

