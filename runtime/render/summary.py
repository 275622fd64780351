"""The plain-text summary `circ run` prints: top nodes per analysis, circuits,
expectations with pass/fail (and why a value could not be computed), warnings.
Reads only the results dict. Names and text from the spec or its data are escaped
(`terminal_text`): one printed line per summary line."""
from __future__ import annotations

from circ.compiler.escape import terminal_text

TOP = 5
ATTENDED = 0.05  # attention mass below which a named position is not listed


def _fmt(value) -> str:
    """A number signed to four places; "n/a" for null or anything else a results file holds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    return f"{value:+.4f}"


def _with_error(value, stderr) -> str:
    """`+1.2345 ± 0.0123`, or the value alone where no standard error is known."""
    if isinstance(stderr, (int, float)) and not isinstance(stderr, bool):
        return f"{_fmt(value)} \u00b1 {stderr:.4f}"
    return _fmt(value)


def _top_values(values: dict) -> list[tuple[str, float]]:
    scalars = [(k, v) for k, v in values.items() if isinstance(v, (int, float))]
    return sorted(scalars, key=lambda kv: (-abs(kv[1]), kv[0]))[:TOP]


def _analysis_lines(name: str, result: dict) -> list[str]:
    kind = result.get("kind", "?")
    head = f"{name} ({kind}"
    if result.get("dataset"):
        head += f" on {result['dataset']}"
    if result.get("metric"):
        head += f", {result['metric']}"
    if result.get("score"):
        head += f", {result['score']} score over every query"
    lines = [head + ")"]
    if kind == "faithfulness":
        lines.append(f"  recovered {_fmt(result.get('value'))}")
        return lines
    if kind == "curve":
        return lines + _curve_lines(result)
    if kind == "ablate":
        lines.append(f"  clean {_fmt(result.get('clean'))}  ablated {_fmt(result.get('ablated'))}  "
                     f"helps {_fmt(result.get('value'))}  ({', '.join(result.get('nodes') or [])})")
        return lines
    if kind == "subspace":
        for node, per_data in sorted(result.get("values", {}).items()):
            for dataset, per_rank in per_data.items():
                row = "  ".join(f"r{r}={v:.3f}" for r, v in per_rank.items() if v is not None)
                lines.append(f"  {node} [{dataset}] {row}")
        return lines
    if kind == "attention" and not result.get("score"):
        patterns = result.get("patterns") or {}
        for node, stats in sorted(result.get("values", {}).items()):
            lines.append(f"  {node}: " + _attention_line(stats, patterns.get(node)))
        return lines
    if "n" in result:
        signed = kind in ("attribute", "patch", "path_patch")
        lines[0] = head + f", n={result['n']}" + ("; + helps)" if signed else ")")
    if "total" in result:
        lines.append(f"  total {_fmt(result['total'])}")
    if "kept" in result:
        baseline = result.get("baseline") if isinstance(result.get("baseline"), dict) else {}
        kept = result["kept"] if isinstance(result["kept"], list) else []
        untried = result.get("untried") if type(result.get("untried")) is int else 0
        graph = len(result.get("values") or {}) + untried
        lines.append(f"  ACDC kept {len(kept)} of {graph} edges at threshold {_fmt(result.get('threshold'))}: "
                     f"metric {_fmt(baseline.get('clean'))} clean, {_fmt(baseline.get('circuit'))} with the kept edges")
    errors = result.get("stderr") if isinstance(result.get("stderr"), dict) else {}
    for node, value in _top_values(result.get("values") or {}):
        lines.append(f"  {node:<12} {_with_error(value, errors.get(node))}")
    return lines


def _curve_lines(result: dict) -> list[str]:
    """Areas of the ranking and of the random baseline, and the sizes at the target."""
    baseline = result.get("random") if isinstance(result.get("random"), dict) else {}
    target = result.get("target")
    return [f"  ranking by |{result.get('ranked_by')}|: CPR {_fmt(result.get('cpr'))}  CMD {_fmt(result.get('cmd'))}  "
            f"size at {target}: {result.get('size_at_target')} of {result.get('ranked')}",
            f"  random ({baseline.get('orders')} orders): CPR {_with_error(baseline.get('cpr'), baseline.get('cpr_stderr'))}  "
            f"CMD {_with_error(baseline.get('cmd'), baseline.get('cmd_stderr'))}  "
            f"size at {target}: {baseline.get('size_at_target')}"]


def _attention_line(stats: dict, pattern: dict | None) -> str:
    """The named positions holding at least ATTENDED of the mass (the top three); when
    none does, the token the first prompt's query attends to most."""
    top = [(p, v) for p, v in sorted(stats.items(), key=lambda kv: (-kv[1], kv[0])) if v >= ATTENDED][:3]
    if top:
        return ", ".join(f"{p} {v:.2f}" for p, v in top)
    line = f"no named position above {ATTENDED:.2f}"
    if pattern and pattern.get("weights"):
        weights = pattern["weights"]
        best = max(range(len(weights)), key=lambda i: weights[i])
        line += f"; first prompt: '{pattern['tokens'][best]}' (position {best}) {weights[best]:.2f}"
    return line


def summarize(results: dict) -> str:
    lines: list[str] = []
    for name, result in results.get("analyses", {}).items():
        if not name.startswith("_"):
            lines += _analysis_lines(name, result)
    for name, circuit in results.get("circuits", {}).items():
        members = ", ".join(
            n["id"] + (f" [{n['category']}]" if n.get("category") else "") for n in circuit.get("nodes") or []
        )
        lines.append(f"circuit {name}: {members or '(empty)'}")
        growth = circuit.get("faithfulness")
        if isinstance(growth, dict):
            reached = "reaches" if growth.get("reached") else "falls short of"
            lines.append(f"  grown by {growth.get('level')}: {growth.get('size')} kept, faithfulness "
                         f"{_fmt(growth.get('value'))} {reached} {growth.get('target')}")
    expectations = results.get("expectations", [])
    if expectations:
        lines.append("expectations")
        for exp in expectations:
            mark = "PASS" if exp["passed"] else "FAIL"
            observed = exp["detail"] if exp.get("detail") else f"value {_fmt(exp.get('value'))}"
            lines.append(f"  {mark}  {exp['text']}  ({observed}, line {exp['line']})")
            if exp.get("reason"):
                lines.append(f"        cannot be computed: {exp['reason']}")
    warnings = results.get("warnings") or []
    if warnings:
        lines.append("warnings")
        lines += [f"  {w['code']}  line {w['line']}: {w['message']}" for w in warnings]
    return "\n".join(terminal_text(line) for line in lines) + "\n"
