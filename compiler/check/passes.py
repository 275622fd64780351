"""The checking passes, in the order they run. Each takes the shared Context, adds
IR and diagnostics to it, and keeps going after errors so that every error of a
file is reported at once. Loading stops the run when a file does not parse."""
from __future__ import annotations

from circ.compiler.check.context import Context
from circ.compiler.check.declare import declare
from circ.compiler.check.implicit_attention import add_attention_analyses
from circ.compiler.check.lower_analyses import lower_analyses
from circ.compiler.check.lower_circuits import lower_circuits
from circ.compiler.check.lower_inputs import lower_datasets, lower_metrics, lower_model
from circ.compiler.check.lower_outputs import lower_expectations
from circ.compiler.check.positions import check_positions

PASSES = (
    declare,                 # names: unique, not reserved; spec/model/categories given once
    lower_model,             # the model and its shape (config.json of a local model)
    lower_datasets,          # generators, files (must exist), derivations of mcq datasets
    lower_metrics,           # metric kinds, positions, normalized(...)
    lower_analyses,          # arguments, node sets and ranges, metrics allowed per analysis
    lower_circuits,          # circuits, category rules, renders
    lower_expectations,      # accessors per analysis kind; inline analyses made implicit
    add_attention_analyses,  # attention that categories' attends()/spread() read
    check_positions,         # every position read exists on every dataset it is read on
)


def run_passes(ctx: Context) -> None:
    for check in PASSES:
        check(ctx)
