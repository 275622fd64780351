"""The submission layout of MIB's circuit-localisation track: one folder per task and
model, `{task}_{model}`, holding either one graph file of importance scores for every
edge (`importances.json`) or one graph file per edge budget (`edges_{p}pct.json`,
the p% of the model's edges with the largest |score| in_graph, for each p of
MIB_PERCENTAGES). Files are EAP-IG graph JSON (compiler/eap_graph.py). A budget is
a share of every edge of the model's full graph (EAP-IG's `Graph.from_model`, q, k
and v apart, logits included), as MIB counts them. Pure Python."""
from __future__ import annotations

import re
from fractions import Fraction

from circ.compiler.eap_graph import ExchangeError, edge_parts, edge_values, graph_json, to_eap_ig

MIB_PERCENTAGES = ("0.1", "0.2", "0.5", "1", "2", "5", "10", "20", "50")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")


def folder_name(task: str | None, model: str | None) -> str:
    """`{task}_{model}`; both must be given (circ knows neither MIB name) and may hold
    letters, digits, `.` and `-` only (MIB writes `arc_easy` as `arc-easy`)."""
    for flag, value in (("--task", task), ("--model", model)):
        if value is None:
            raise ExchangeError(f"--format mib needs {flag}: MIB's name of the "
                                + ("task (ioi, mcqa, arc-easy, ...)" if flag == "--task"
                                   else "model (gpt2, qwen2.5, gemma2, llama3, ...)"))
        if not _NAME.match(value):
            shown = value if len(value) <= 64 else value[:64] + "\u2026"
            raise ExchangeError(f"{flag} {shown!r} is no MIB name: letters, digits, '.' and '-' only "
                                "(up to 64; MIB writes arc_easy as arc-easy)")
    return f"{task}_{model}"


def model_edge_count(n_layers: int, n_heads: int) -> int:
    """Edges of the full graph of a model with sequential attention and MLP: into each
    head's q, k and v from the input and every earlier head and MLP, into each MLP from
    those and its own layer's heads, into the logits from every node. Layer l has
    1 + l(H + 1) nodes before it: the sum over layers in closed form, so that a results
    file claiming 10**12 layers costs no time."""
    before_all = n_layers + (n_heads + 1) * n_layers * (n_layers - 1) // 2  # sum of 1 + l(H + 1)
    return (3 * n_heads + 1) * before_all + n_layers * n_heads + 1 + n_layers * (n_heads + 1)


def submission(results: dict, task: str | None, model: str | None, analysis: str | None,
               circuit: str | None, by_budget: bool) -> dict[str, dict]:
    """{path inside the submission folder: graph JSON} for one task and model."""
    folder = folder_name(task, model)
    if not by_budget:
        return {f"{folder}/importances.json": to_eap_ig(results, analysis, circuit)}
    values = edge_values(results, analysis)
    shape = results.get("model") or {}
    n_layers, n_heads = shape.get("n_layers"), shape.get("n_heads")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in (n_layers, n_heads)):
        raise ExchangeError("the results name no model shape (model.n_layers, model.n_heads) to count edges by")
    total = model_edge_count(n_layers, n_heads)
    ranked = sorted(values, key=lambda key: (-abs(values[key]), key))
    files = {}
    for percent in MIB_PERCENTAGES:
        count = int(Fraction(percent) * total // 100)
        kept = {edge_parts(key) for key in ranked[:count]}
        files[f"{folder}/edges_{percent}pct.json"] = graph_json(results, values, kept)
    return files
