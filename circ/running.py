"""Run a checked spec: load its model (or take one already loaded), plan it, execute
the plan and assemble the results dictionary that results.json holds. The Python API
and `circ run` both run specs through here.

Every failure that a spec, its data or its model can cause is raised as a
`CircError` whose diagnostic points at the spec line it concerns (code E600)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from circ.compiler import ir
from circ.compiler.diagnostics import CircError, Diagnostic

RUN_ERROR = "E600"


@dataclass
class RunOptions:
    """How to run: batch size, seed, progress, where finished analyses are kept."""

    batch_size: int = 32
    seed: int = 0
    progress: bool = True
    log: object = field(default=sys.stderr, repr=False)
    report_op: object = field(default=None, repr=False)  # called (number, total, op_id) per op
    store_dir: Path | None = None  # an output folder: its .circ-cache keeps finished analyses
    resume: bool = False
    executor: str = "local"
    address: str | None = None
    trust_remote_code: bool = False
    include_outside: bool = False  # includes outside the spec's folder allowed (--include-outside)
    started: float | None = None  # time.monotonic() when the run began; default: at execution


@dataclass
class Finished:
    """A finished run: results.json's dictionary and what produced it."""

    results: dict
    spec: ir.Spec
    sources: dict
    reused: int = 0
    per_prompt: dict = field(default_factory=dict)  # per_prompt.json: {analysis: {node: [values]}}
    prompts: dict = field(default_factory=dict)  # {dataset: [prompt text]}, for the report's per-prompt views


def model_from_option(text: str, base: ir.Model) -> ir.Model:
    """A model named on the command line or in `circ.run(model=...)`: `demo`, a local
    Hugging Face directory, a .gguf file, or a name in the local Hugging Face cache;
    the spec's dtype, device and numerics are kept."""
    if text == "demo":
        return replace(base, source="demo", location=None)
    path = Path(text)
    if path.suffix == ".gguf":
        return replace(base, source="gguf", location=str(path.resolve()))
    if path.is_dir():
        return replace(base, source="hf", location=str(path.resolve()))
    return replace(base, source="cache", location=text)


def load(spec: ir.Spec, sources: dict, *, trust_remote_code: bool = False, quiet: bool = False):
    """The spec's model, booted; a model that cannot load is a diagnostic at its line.
    `quiet` hides the weight-loading progress bar of transformers."""
    from transformers.utils import logging as hf_logging

    from circ.runtime.models.loading import ModelError, load_model

    shown = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        return load_model(spec.model, spec_dir=Path(spec.path).parent, trust_remote_code=trust_remote_code)
    except ModelError as error:
        raise CircError([Diagnostic(RUN_ERROR, str(error), spec.model.span)], sources) from None
    finally:
        if quiet and shown:
            hf_logging.enable_progress_bar()


def run_loaded(spec: ir.Spec, loaded, options: RunOptions, *, sources: dict | None = None) -> Finished:
    """Execute `spec` on `loaded` (a LoadedModel) and assemble its results."""
    import torch

    from circ.compiler.api import compile_file, compile_source, plan
    from circ.runtime.execute.executor import Executor, RunError, Settings
    from circ.runtime.execute.resume_store import open_store
    from circ.runtime.results.assemble import assemble, per_prompt_table, spec_sources

    started = options.started if options.started is not None else time.monotonic()
    sources = sources if sources is not None else spec_sources(spec)
    if spec.shape != loaded.shape:  # checked against the model actually loaded
        text = sources.get(spec.path)
        again = {"model_override": spec.model, "shape": loaded.shape,
                 "include_outside": options.include_outside}
        spec = (compile_source(text, spec.path, **again) if text is not None and not Path(spec.path).is_file()
                else compile_file(spec.path, **again))
    torch.manual_seed(options.seed)
    graph = plan(spec)
    store = None
    if options.store_dir is not None:
        store = open_store(options.store_dir, spec, graph, loaded, seed=options.seed,
                           batch_size=options.batch_size, reuse=options.resume, log=options.log)
    settings = Settings(batch_size=options.batch_size, seed=options.seed, show_progress=options.progress,
                        log=options.log, store=store, report_op=options.report_op)
    if options.executor == "ray":
        from circ.runtime.execute.ray_executor import RayExecutor

        executor = RayExecutor(spec, graph, loaded, settings, sources, address=options.address,
                               trust_remote_code=options.trust_remote_code)
    else:
        executor = Executor(spec, graph, loaded, settings, sources)
    try:
        executor.run()
    except RunError as error:
        raise CircError([Diagnostic(RUN_ERROR, error.message, error.span)], sources) from None
    timing = {"started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "seconds": round(time.monotonic() - started, 3)}
    results = assemble(executor, spec, loaded, settings, sources.get(spec.path, ""), timing)
    return Finished(results, spec, sources, reused=len(store.reused) if store is not None else 0,
                    per_prompt=per_prompt_table(executor.analyses), prompts=executor.prompt_texts)
