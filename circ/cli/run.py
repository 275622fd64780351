"""`circ run`: compile a spec, load its model, execute the plan, write results.json,
the diagrams the spec asks for and report.html (and per_prompt.json with
--per-prompt), print a summary. Exit codes: 0 every expectation holds, 1 one fails
(the hypothesis is refuted), 2 the spec, its data or its model is broken or the run
could not finish. Errors from the spec, its datasets or its model are printed as
diagnostics at the spec line they concern, never as a traceback, and never leave a
partial results file."""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from circ.compiler import ir
from circ.compiler.diagnostics import CircError, Diagnostic
from circ.runtime.execute.resume_store import CACHE_FOLDER, open_store

RUN_ERROR = "E600"
HOLDS, REFUTED, BROKEN = 0, 1, 2  # exit codes


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


def _override(path: str, model: str | None, device: str | None, device_map: str | None = None) -> ir.Model | None:
    from dataclasses import replace

    from circ.compiler.api import compile_file

    if model is None and device is None and device_map is None:
        return None
    base = compile_file(path).model
    if model is not None:
        base = model_from_option(model, base)
    if device_map is not None:  # a map file is named relative to the current folder
        base = replace(base, device_map=str(Path(device_map).resolve()) if Path(device_map).is_file() else device_map)
    return replace(base, device=device) if device else base


def run_spec(path: str, out_dir: str | None, *, model: str | None, device: str | None,
             batch_size: int, seed: int, trust_remote_code: bool, progress: bool,
             resume: bool = False, device_map: str | None = None, executor: str = "local",
             address: str | None = None, per_prompt: bool = False, stdout=sys.stdout, stderr=sys.stderr) -> int:
    from circ.compiler.api import compile_file

    started = time.monotonic()
    try:
        spec = compile_file(path, model_override=_override(path, model, device, device_map))
    except CircError as error:
        print(error.render(), file=stderr)
        return BROKEN
    out = Path(out_dir) if out_dir else Path("out") / Path(path).stem
    try:
        _check_render_targets(spec)
        return _run(spec, path, out, batch_size, seed, trust_remote_code, progress, resume, started,
                    stdout, stderr, executor, address, per_prompt)
    except CircError as error:
        print(error.render(), file=stderr)
        return BROKEN
    except KeyboardInterrupt:
        print(f"circ: interrupted; no results written (finished analyses, if any, are kept in "
              f"{out / CACHE_FOLDER}: `circ run --resume` reuses them)", file=stderr)
        return 130


def _run(spec, path, out, batch_size, seed, trust_remote_code, progress, resume, started,
         stdout, stderr, executor_kind="local", address=None, per_prompt=False) -> int:
    import torch

    from circ.compiler.api import compile_file, plan
    from circ.runtime.execute.executor import Executor, RunError, Settings
    from circ.runtime.models.loading import ModelError, load_model
    from circ.runtime.render.summary import summarize
    from circ.runtime.results.assemble import assemble, per_prompt_table, spec_sources
    from circ.runtime.results.write import write_results

    sources = spec_sources(spec)
    torch.manual_seed(seed)
    try:
        loaded = load_model(spec.model, spec_dir=Path(spec.path).parent,
                            trust_remote_code=trust_remote_code)
    except ModelError as error:
        print(_diagnostic(spec.model.span, str(error), sources), file=stderr)
        return BROKEN
    if spec.shape != loaded.shape:
        spec = compile_file(path, model_override=spec.model, shape=loaded.shape)
    graph = plan(spec)
    store = open_store(out, spec, graph, loaded, seed=seed, batch_size=batch_size, reuse=resume,
                       log=stderr)
    settings = Settings(batch_size=batch_size, seed=seed, show_progress=progress, log=stderr, store=store)
    if executor_kind == "ray":
        from circ.runtime.execute.ray_executor import RayExecutor

        executor = RayExecutor(spec, graph, loaded, settings, sources, address=address,
                               trust_remote_code=trust_remote_code)
    else:
        executor = Executor(spec, graph, loaded, settings, sources)
    try:
        executor.run()
    except RunError as error:
        print(_diagnostic(error.span, error.message, sources), file=stderr)
        return BROKEN
    if resume:
        print(f"circ: reused {len(store.reused)} finished analyses from {store.folder}", file=stderr)
    timing = {"started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "seconds": round(time.monotonic() - started, 3)}
    results = assemble(executor, spec, loaded, settings, sources.get(spec.path, ""), timing)
    out.mkdir(parents=True, exist_ok=True)
    write_results(out / "results.json", results)
    if per_prompt:
        write_results(out / "per_prompt.json", per_prompt_table(executor.analyses))
    _write_pictures(spec, results, sources.get(spec.path, ""), out, stderr)
    print(summarize(results), file=stdout, end="")
    print(f"results: {out / 'results.json'}", file=stdout)
    failed = [e for e in results["expectations"] if not e["passed"]]
    return REFUTED if failed else HOLDS


def _check_render_targets(spec: ir.Spec) -> None:
    """Diagrams are written inside the output folder, never elsewhere."""
    from circ.runtime.results.assemble import spec_sources

    outside = [r for r in spec.renders if Path(r.path).is_absolute() or ".." in Path(r.path).parts]
    if outside:
        raise CircError([Diagnostic(RUN_ERROR, f"cannot render to `{r.path}`: diagrams are written inside "
                                    "the output folder; give a relative path without `..`", r.span)
                         for r in outside], spec_sources(spec))


def _write_pictures(spec, results: dict, spec_text: str, out: Path, stderr) -> None:
    from circ.runtime.render.diagram import circuit_dot
    from circ.runtime.render.graphviz import RenderError, inline_svg, render
    from circ.runtime.render.report import write_report

    for request in spec.renders:
        try:
            render(circuit_dot(results, request.circuit), out / request.path)
        except RenderError as error:
            print(f"circ: {error}", file=stderr)
    diagram = None
    if results.get("circuit"):
        try:  # the circuit the spec renders first, else its first circuit
            diagram = inline_svg(circuit_dot(results, spec.renders[0].circuit if spec.renders else None))
        except RenderError as error:
            print(f"circ: report without a diagram: {error}", file=stderr)
    write_report(results, spec_text, out / "report.html", diagram_svg=diagram)


def _diagnostic(span: ir.Span, message: str, sources: dict) -> str:
    return Diagnostic(RUN_ERROR, message, span).format(sources.get(span.path))

