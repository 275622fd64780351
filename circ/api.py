"""The Python API (docs/api.md): compile a spec, plan it, run it on a model (a path,
"demo", or a TransformerBridge already in memory) and get `Results`; read results
back; diff two runs. Nothing is printed unless asked; errors of the spec, its data
or its model are raised as one exception type, `CircError`, with `.diagnostics`."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from circ.compiler import ir
from circ.compiler.diagnostics import CircError
from circ.results import Results, load_results

__all__ = ["CheckedSpec", "CircError", "Results", "compile", "diff", "load_results", "plan", "run"]


@dataclass(frozen=True)
class CheckedSpec:
    """A spec that passed every check: its IR (`.ir`) and the text of its files."""

    ir: ir.Spec
    sources: dict

    @property
    def name(self) -> str:
        return self.ir.name

    @property
    def path(self) -> str:
        return self.ir.path

    def __repr__(self) -> str:
        spec = self.ir
        return (f"<CheckedSpec {spec.name}: {len(spec.datasets)} datasets, {len(spec.analyses)} analyses, "
                f"{len(spec.circuits)} circuits, {len(spec.expectations)} expectations>")


def compile(spec: str | Path, *, model: str | None = None) -> CheckedSpec:  # noqa: A001 - the API's verb
    """Check a spec given as a path (a `Path`, or a string ending in `.circ` naming a
    file) or as its text; relative paths in text are taken from the current folder.
    `model` checks layer and head ranges against another model, as `circ run --model`
    does. Raises CircError carrying every diagnostic."""
    from circ.compiler.api import compile_file, compile_source
    from circ.runtime.results.assemble import spec_sources

    override = _model_override(str(model)) if model is not None else None
    if _is_path(spec):
        checked = compile_file(str(spec), model_override=override)
        return CheckedSpec(checked, spec_sources(checked))
    text, path = str(spec), str(Path.cwd() / "<string>.circ")
    checked = compile_source(text, path, model_override=override)
    sources = spec_sources(checked)
    sources[path] = text
    return CheckedSpec(checked, sources)


def plan(spec: CheckedSpec | str | Path):
    """The networkx DiGraph of operations that runs the spec."""
    from circ.compiler.api import plan as build

    return build(_checked(spec).ir)


def run(spec: CheckedSpec | str | Path, *, model=None, batch_size: int = 32, seed: int = 0,
        progress: bool = True, out: str | Path | None = None, trust_remote_code: bool = False) -> Results:
    """Run a spec and return its Results.

    model: None (the spec's own model), "demo", a local Hugging Face folder, a .gguf
    file, a name in the local Hugging Face cache, or a TransformerBridge already
    loaded (used as it is: no second load). progress: a progress bar over the plan's
    operations (tqdm.auto, so a widget in Jupyter). out: also write results.json,
    the spec's diagrams and report.html there."""
    from circ.running import RunOptions, load, run_loaded

    checked = _checked(spec)
    spec_ir = checked.ir
    bar = _ProgressBar() if progress else None
    options = RunOptions(batch_size=batch_size, seed=seed, progress=progress, log=sys.stderr,
                         report_op=bar, trust_remote_code=trust_remote_code)
    try:
        if model is not None and not isinstance(model, (str, Path)):
            from circ.runtime.models.in_memory import wrap_bridge
            from circ.runtime.models.loading import ModelError

            try:
                loaded = wrap_bridge(model)
            except ModelError as error:
                raise TypeError(str(error)) from None
        else:
            if model is not None:
                spec_ir = _recompiled(checked, _model_override(str(model)))
            loaded = load(spec_ir, checked.sources, trust_remote_code=trust_remote_code,
                          quiet=not progress)
        finished = run_loaded(spec_ir, loaded, options, sources=checked.sources)
    finally:
        if bar is not None:
            bar.close()
    results = Results(finished.results, checked.sources.get(spec_ir.path, ""), per_prompt=finished.per_prompt,
                      prompts=finished.prompts,
                      renders=tuple((r.circuit, r.path) for r in finished.spec.renders))
    if out is not None:
        results.save(out)
    return results


def diff(old, new, *, threshold: float = 0.01) -> dict:
    """What `circ diff OLD NEW --format json` prints, as a dictionary. Operands: spec
    or results paths (`REV:path` too), or `Results`."""
    import json

    from circ.compiler.diff.format import format_json
    from circ.compiler.diff.inputs import DiffInputError, DiffReport, build_report
    from circ.compiler.diff.results import ResultsError, diff_results

    try:
        if isinstance(old, Results) or isinstance(new, Results):
            old_data, new_data = (_results_data(x) for x in (old, new))
            report = DiffReport(_label(old), _label(new),
                                results=diff_results(old_data, new_data, threshold,
                                                     labels=(_label(old), _label(new))))
        else:
            report = build_report(str(old), str(new), threshold=threshold)
    except (DiffInputError, ResultsError) as error:
        raise ValueError(str(error)) from None
    return json.loads(format_json(report))


class _ProgressBar:
    """A tqdm.auto bar advanced once per operation of the plan."""

    def __init__(self):
        self._bar = None

    def __call__(self, number: int, total: int, op_id: str) -> None:
        from tqdm.auto import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, desc="circ", unit="op", leave=False)
        self._bar.set_postfix_str(op_id, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _is_path(spec) -> bool:
    if isinstance(spec, Path):
        return True
    return isinstance(spec, str) and "\n" not in spec and spec.endswith(".circ")


def _checked(spec) -> CheckedSpec:
    return spec if isinstance(spec, CheckedSpec) else compile(spec)


def _model_override(model: str):
    """The spec's own model with `model` in place of its source and location."""
    from circ.running import model_from_option

    return lambda base: model_from_option(model, base)


def _recompiled(checked: CheckedSpec, override) -> ir.Spec:
    from circ.compiler.api import compile_file, compile_source

    path = checked.ir.path
    if Path(path).is_file():
        return compile_file(path, model_override=override)
    return compile_source(checked.sources[path], path, model_override=override)


def _results_data(value) -> dict:
    if isinstance(value, Results):
        return value.data
    return load_results(value).data


def _label(value) -> str:
    return f"results of {value.name}" if isinstance(value, Results) else str(value)
