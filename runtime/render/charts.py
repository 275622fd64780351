"""The report's charts: matplotlib figures (Agg canvas) returned as inline `<svg>` text.

Each function takes the plain values of one analysis from results.json and returns an
`<svg>` element without XML prolog, ready to paste into HTML. Colours follow the
diagram: blue helps the correct answer, red hurts. Output is deterministic (fixed
hash salt, no date in the metadata). Charts stay small at any model size: cells of a
heatmap or an attention grid are one raster image inside the SVG, and labels are
thinned where one per row would not fit.
"""
from __future__ import annotations

import io
import math

from circ.runtime.render.diagram import HELPS, HURTS, RenderError, parse_node_id
from matplotlib import colormaps, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

PART_LINES = {"q": "-", "k": "--", "v": ":", None: "-"}
MAX_ANNOTATED_CELLS = 160
MAX_BARS = 30
MAX_STRIPS = 16  # more attention patterns than this are drawn as grids, heads x tokens
MAX_GRID_ROWS = 300  # heads in one attention grid; more are split by layer range
MAX_TICK_LABELS = 64  # tick labels along one axis of a grid; more are thinned
MAX_CURVE_POINTS = 2000  # measured sizes drawn along a faithfulness curve; more are thinned evenly
DATASET_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")


def signed_bar_chart(values: dict, *, title: str, xlabel: str, limit: int = MAX_BARS,
                     stderr: dict | None = None) -> str:
    """Horizontal bars, largest value on top, blue for positive (helps) and red for
    negative (hurts), said in a legend; labelled `value ± stderr` where `stderr` has the
    node; only the `limit` largest in size when there are more; null values are left out."""
    items = [(str(k), _number(v, k)) for k, v in values.items() if v is not None]
    if not items:
        raise RenderError(f"{title}: there are no values to chart")
    if len(items) > limit:
        title = f"{title} (the {limit} largest of {len(items)})"
        items = sorted(items, key=lambda kv: (-abs(kv[1]), kv[0]))[:limit]
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    fig = _figure(7.5, 0.9 + 0.28 * len(items))
    ax = fig.add_subplot()
    positions = range(len(items))[::-1]
    bars = ax.barh(list(positions), [v for _, v in items],
                   color=[HELPS if v >= 0 else HURTS for _, v in items])
    ax.set_yticks(list(positions), [_text(k) for k, _ in items])
    ax.bar_label(bars, labels=[_with_error(v, (stderr or {}).get(k)) for k, v in items], padding=3, fontsize=8)
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.legend(handles=[Patch(color=HELPS, label="helps"), Patch(color=HURTS, label="hurts")],
              loc="lower right", fontsize=8, frameon=False)
    ax.margins(x=0.15)
    _finish(ax, title, xlabel=xlabel)
    return _svg(fig, title)


def patch_heatmap(values: dict, *, n_layers: int, n_heads: int, title: str,
                  cell_ids: dict | None = None) -> str:
    """Layer x head grid of patching effects, MLPs as the last column, layer 0 at the
    bottom as in the diagram; blue helps, red hurts (as everywhere); cells not patched
    are left blank. `cell_ids` maps node ids to element ids: each such cell gets an
    outline, invisible until the page highlights it, as a `<g id=...>` that links can
    jump to."""
    grid = [[math.nan] * (n_heads + 1) for _ in range(n_layers)]
    for node_id, value in values.items():
        layer, kind = parse_node_id(node_id)
        if kind not in ("head", "mlp") or not 0 <= layer < n_layers:
            continue
        column = n_heads if kind == "mlp" else int(node_id.split(".H")[1])
        if column > n_heads:
            raise RenderError(f"{title}: '{node_id}' is outside the model's {n_heads} heads")
        grid[layer][column] = _number_or_nan(value, node_id)
    finite = [abs(v) for row in grid for v in row if not math.isnan(v)]
    if not finite:
        raise RenderError(f"{title}: no head or MLP values to draw")
    limit = max(finite) or 1.0
    fig = _figure(min(2.4 + 0.85 * (n_heads + 1), 16.0), min(1.5 + 0.55 * n_layers, 14.0))
    ax = fig.add_subplot()
    cmap = colormaps["RdBu"].with_extremes(bad="#f2f2f2")
    image = ax.imshow(grid, cmap=cmap, vmin=-limit, vmax=limit, origin="lower",
                      aspect="auto")
    ax.set_xticks(range(n_heads + 1), [f"H{h}" for h in range(n_heads)] + ["MLP"])
    ax.set_yticks(range(n_layers), [f"L{layer}" for layer in range(n_layers)])
    if n_layers * (n_heads + 1) <= MAX_ANNOTATED_CELLS:
        for layer, row in enumerate(grid):
            for column, value in enumerate(row):
                if not math.isnan(value):
                    ax.text(column, layer, f"{value:+.2f}", ha="center", va="center",
                            fontsize=8, color="white" if abs(value) > 0.6 * limit else "black")
    for node_id, element_id in sorted((cell_ids or {}).items()):
        layer, kind = parse_node_id(node_id)
        if kind in ("head", "mlp") and 0 <= layer < n_layers:
            column = n_heads if kind == "mlp" else int(node_id.split(".H")[1])
            ax.add_patch(Rectangle((column - 0.5, layer - 0.5), 1, 1, fill=False,
                                   edgecolor="none", gid=element_id))
    fig.colorbar(image, ax=ax, label="effect (blue + helps, red \u2212 hurts)", shrink=0.9)
    _finish(ax, title, xlabel="head", ylabel="layer", grid=False)
    return _svg(fig, title)


def position_heatmap(positions: dict, tokens: list, *, title: str, limit: int = MAX_GRID_ROWS) -> str:
    """patch(at=each): a row per node (layer 0 at the bottom) and a column per token
    position, labelled with the first prompt's tokens (or per listed position, by
    name). Cells show the values as results.json holds them, positive where the node
    helps (docs/results.md), so blue marks a position where the node helps and red
    where it hurts; only the `limit` nodes with the largest effect at any position
    when there are more."""
    grid_rows = {node: {str(p): _number_or_nan(v, node) for p, v in by_position.items()}
                 for node, by_position in positions.items()}
    if not grid_rows:
        raise RenderError(f"{title}: there are no per-position values to draw")
    if len(grid_rows) > limit:
        title = f"{title} (the {limit} strongest of {len(grid_rows)} nodes)"
        strongest = sorted(grid_rows, key=lambda n: (-max(_finite_abs(grid_rows[n].values())), n))[:limit]
        grid_rows = {n: grid_rows[n] for n in strongest}
    nodes = sorted(grid_rows, key=lambda n: parse_node_id(n) + (n,))
    keys = list(dict.fromkeys(key for row in grid_rows.values() for key in row))
    if all(key.isdigit() for key in keys):  # every token position: 0 .. width - 1
        keys = [str(p) for p in range(1 + max(int(key) for key in keys))]
        names = [f"{_token(tokens[p]) if p < len(tokens) else ''} {p}" for p in range(len(keys))]
    else:  # listed positions, by name or index
        names = [_text(key) for key in keys]
    width = len(keys)
    grid = [[grid_rows[n].get(key, math.nan) for key in keys] for n in nodes]
    limit_value = max((abs(v) for row in grid for v in row if not math.isnan(v)), default=0.0) or 1.0
    fig = _figure(max(6.0, 2.4 + 0.3 * min(width, 2 * MAX_TICK_LABELS)), min(1.6 + 0.3 * len(nodes), 30.0))
    ax = fig.add_subplot()
    cmap = colormaps["RdBu"].with_extremes(bad="#f2f2f2")
    image = ax.imshow(grid, cmap=cmap, vmin=-limit_value, vmax=limit_value, origin="lower", aspect="auto",
                      interpolation="nearest")
    columns = _thinned(range(width))
    ax.set_xticks(columns, [names[c] for c in columns], rotation=90, fontsize=7)
    rows = _thinned(range(len(nodes)))
    ax.set_yticks(rows, [_text(nodes[r]) for r in rows], fontsize=7)
    if len(nodes) * width <= MAX_ANNOTATED_CELLS:
        for r, row in enumerate(grid):
            for c, value in enumerate(row):
                if not math.isnan(value):
                    ax.text(c, r, f"{value:+.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(value) > 0.6 * limit_value else "black")
    fig.colorbar(image, ax=ax, label="effect (blue + helps, red \u2212 hurts)", shrink=0.8)
    _finish(ax, title, xlabel="token (first prompt) and position", ylabel="node", grid=False)
    return _svg(fig, title)


def prompt_distributions(stats: dict, points: dict, *, title: str, xlabel: str) -> str:
    """One horizontal box per node (first node on top): the box from the first to the
    third quartile with the median, whiskers from the smallest to the largest value,
    over a strip of per-prompt points (blue where the node helps on that prompt, red
    where it hurts). `stats[node]` holds "min", "q1", "median", "q3", "max" as
    computed by the caller; `points[node]` the values drawn as dots."""
    nodes = list(stats)
    if not nodes:
        raise RenderError(f"{title}: there are no per-prompt values to draw")
    fig = _figure(7.5, 1.1 + 0.45 * len(nodes))
    ax = fig.add_subplot()
    rows = list(range(len(nodes)))[::-1]
    for row, node in zip(rows, nodes):
        dots = points.get(node) or []
        jitter = [0.25 * (((i * 0.618034) % 1.0) - 0.5) for i in range(len(dots))]
        ax.scatter(dots, [row + j for j in jitter], s=10, alpha=0.6, linewidths=0,
                   c=[HELPS if v >= 0 else HURTS for v in dots])
    ax.bxp([{"whislo": stats[n]["min"], "q1": stats[n]["q1"], "med": stats[n]["median"],
             "q3": stats[n]["q3"], "whishi": stats[n]["max"], "label": _text(n)} for n in nodes],
           positions=rows, orientation="horizontal", showfliers=False, widths=0.5,
           medianprops={"color": "#222222"}, boxprops={"color": "#555555"})
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.legend(handles=[Patch(color=HELPS, label="helps"), Patch(color=HURTS, label="hurts")],
              loc="lower right", fontsize=8, frameon=False)
    _finish(ax, title, xlabel=xlabel)
    return _svg(fig, title)


def _finite_abs(values) -> list[float]:
    return [abs(v) for v in values if not math.isnan(v)] or [0.0]


def attention_strips(patterns: dict, *, title: str) -> str:
    """One strip per head: its attention from the query position over the prompt's
    tokens, with the tokens written under the strip."""
    heads = sorted(patterns, key=lambda h: parse_node_id(h) + (h,))
    if not heads:
        raise RenderError(f"{title}: there are no attention patterns to draw")
    rows = [_pattern(head, patterns[head]) for head in heads]
    longest = max(len(tokens) for tokens, _ in rows)
    fig = _figure(max(6.0, 1.2 + 0.24 * longest), 1.25 * len(rows) + 0.5)
    for index, (head, (tokens, weights)) in enumerate(zip(heads, rows)):
        ax = fig.add_subplot(len(rows), 1, index + 1)
        ax.imshow([weights], cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(tokens)), [_token(t) for t in tokens], rotation=90,
                      fontsize=8)
        ax.set_yticks([0], [_text(head)])
        for position, weight in enumerate(weights):
            if weight >= 0.1:  # NaN compares false: no label
                ax.text(position, 0, f"{weight:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if weight > 0.5 else "black")
    fig.suptitle(_text(title), fontsize=11)
    fig.tight_layout()
    return _svg(fig, title)


def attention_grids(patterns: dict, *, title: str) -> list[str]:
    """Many heads' attention from the query position: one image per chart, a row per
    head (layer by layer, a line between layers) and a column per token, at most
    MAX_GRID_ROWS heads per chart (split between layers where a layer range fills one)."""
    heads = sorted(patterns, key=lambda h: parse_node_id(h) + (h,))
    if not heads:
        raise RenderError(f"{title}: there are no attention patterns to draw")
    charts, chunk = [], []
    for head in heads:
        if len(chunk) >= MAX_GRID_ROWS and parse_node_id(head)[0] != parse_node_id(chunk[-1])[0] \
                or len(chunk) >= 2 * MAX_GRID_ROWS:
            charts.append(chunk)
            chunk = []
        chunk.append(head)
    charts.append(chunk)
    if len(charts) == 1:
        return [_attention_grid(patterns, heads, title)]
    return [_attention_grid(patterns, part, f"{title}, layers {parse_node_id(part[0])[0]}"
                                            f"\u2013{parse_node_id(part[-1])[0]}") for part in charts]


def _attention_grid(patterns: dict, heads: list[str], title: str) -> str:
    rows = [_pattern(head, patterns[head]) for head in heads]
    width = max(len(weights) for _, weights in rows)
    grid = [weights + [math.nan] * (width - len(weights)) for _, weights in rows]
    same_tokens = all(tokens == rows[0][0] for tokens, _ in rows)
    fig = _figure(max(6.0, 2.4 + 0.16 * min(width, 4 * MAX_TICK_LABELS)), min(1.8 + 0.06 * len(heads), 30.0))
    ax = fig.add_subplot()
    cmap = colormaps["Blues"].with_extremes(bad="#f2f2f2")
    image = ax.imshow(grid, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    columns = _thinned(range(width))
    if same_tokens:
        ax.set_xticks(columns, [_token(rows[0][0][c]) for c in columns], rotation=90, fontsize=7)
    else:
        ax.set_xticks(columns, [str(c) for c in columns], fontsize=7)
    layers = [parse_node_id(head)[0] for head in heads]
    if len(heads) <= MAX_TICK_LABELS:
        ax.set_yticks(range(len(heads)), [_text(head) for head in heads], fontsize=7)
    else:
        firsts = [i for i, layer in enumerate(layers) if i == 0 or layer != layers[i - 1]]
        firsts = _thinned(firsts)
        ax.set_yticks(firsts, [f"L{layers[i]}" for i in firsts], fontsize=7)
    for i in range(1, len(heads)):
        if layers[i] != layers[i - 1]:
            ax.axhline(i - 0.5, color="#666666", linewidth=0.4)
    fig.colorbar(image, ax=ax, label="attention", shrink=0.8)
    _finish(ax, title, xlabel="token" if same_tokens else "position", ylabel="head", grid=False)
    return _svg(fig, title)


def _thinned(ticks) -> list:
    """At most MAX_TICK_LABELS of `ticks`, evenly spaced."""
    ticks = list(ticks)
    step = max(1, math.ceil(len(ticks) / MAX_TICK_LABELS))
    return ticks[::step]


def rank_sweep(values: dict, ranks: list | None, *, title: str) -> str:
    """Fraction of the metric recovered against rank: one panel per head, one line per
    dataset (colour) and part (line style: q solid, k dashed, v dotted)."""
    by_head: dict[str, list[tuple[str | None, str, dict]]] = {}
    split = {key: key.rsplit(".", 1) if parse_node_id(key)[1] == "head_input" else (key, None)
             for key in values}
    for key in sorted(values, key=lambda k: (split[k][0], "qkv".find(split[k][1] or ""))):
        head, part = split[key]
        if not isinstance(values[key], dict):
            raise RenderError(f"{title}: '{key}' must map datasets to per-rank values")
        for dataset, sweep in values[key].items():
            if not isinstance(sweep, dict):
                raise RenderError(f"{title}: '{key}' on '{dataset}' must map ranks to values")
            by_head.setdefault(head, []).append((part, str(dataset), sweep))
    if not by_head:
        raise RenderError(f"{title}: there are no ranks to plot")
    labels = _rank_labels(ranks, by_head)
    datasets = list(dict.fromkeys(d for lines in by_head.values() for _, d, _ in lines))
    fig = _figure(4.6 * len(by_head) + 1.6, 3.6)
    for index, head in enumerate(sorted(by_head, key=lambda h: parse_node_id(h) + (h,))):
        ax = fig.add_subplot(1, len(by_head), index + 1)
        for part, dataset, sweep in by_head[head]:
            points = [(i, _number(sweep[r], f"{head} {dataset} rank {r}"))
                      for i, r in enumerate(labels) if sweep.get(r) is not None]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                    linestyle=PART_LINES.get(part, "-"),
                    color=DATASET_COLOURS[datasets.index(dataset) % len(DATASET_COLOURS)],
                    label=_text(f"{dataset} {part}" if part else dataset))
        ax.axhline(1.0, color="#999999", linewidth=0.8)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.08)
        ax.legend(fontsize=7, ncols=len(datasets), loc="lower right")
        _finish(ax, f"{title}: {head}", xlabel="rank", ylabel="fraction recovered")
    return _svg(fig, title)


def faithfulness_curve(curve: dict, *, title: str) -> str:
    """Faithfulness against the fraction of ranked nodes kept: the ranking (blue), the
    random baseline's mean with a band of one standard error (grey), the target
    (dashed) and, on each line that reaches it, the smallest size that does."""
    fractions = [_number(x, f"{title} fraction") for x in _listed(curve.get("fractions"), f"{title} fractions")]
    own = [_number_or_nan(f, f"{title} faithfulness")
           for f in _listed(curve.get("faithfulness"), f"{title} faithfulness")]
    baseline = curve.get("random") if isinstance(curve.get("random"), dict) else {}
    mean = [_number_or_nan(f, f"{title} random faithfulness")
            for f in _listed(baseline.get("faithfulness"), f"{title} random faithfulness")]
    spread = [0.0 if e is None else _number(e, f"{title} random stderr")
              for e in _listed(baseline.get("stderr"), f"{title} random stderr")]
    if not fractions or len(own) != len(fractions):
        raise RenderError(f"{title}: a curve needs as many faithfulness values as fractions")
    measured, drawn = len(fractions), _evenly_thinned(len(fractions), MAX_CURVE_POINTS)
    fractions, own, mean, spread = ([values[i] for i in drawn] if len(values) == measured else values
                                    for values in (fractions, own, mean, spread))
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    ranked_by = curve.get("ranked_by", "ranking")
    ax.plot(fractions, own, marker="o", color=HELPS, label=_text(f"by |{ranked_by}| (CPR {_area(curve.get('cpr'))})"))
    if len(mean) == len(fractions):
        ax.plot(fractions, mean, marker=".", color="#777777",
                label=_text(f"random, {baseline.get('orders')} orders (CPR {_area(baseline.get('cpr'))})"))
        if len(spread) == len(fractions):
            ax.fill_between(fractions, [m - e for m, e in zip(mean, spread)],
                            [m + e for m, e in zip(mean, spread)], color="#bbbbbb", alpha=0.4, linewidth=0)
    target = curve.get("target")
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        ax.axhline(target, color="#555555", linestyle="--", linewidth=0.9, label=_text(f"target {target:g}"))
        total = curve.get("ranked")
        for size, colour in ((curve.get("size_at_target"), HELPS), (baseline.get("size_at_target"), "#777777")):
            if all(isinstance(v, int) and not isinstance(v, bool) for v in (size, total)) and total > 0:
                ax.axvline(size / total, color=colour, linestyle=":", linewidth=1.0)
                ax.annotate(_text(f"{size}"), (size / total, target), textcoords="offset points",
                            xytext=(3, -12), fontsize=8, color=colour)
    ax.set_xlim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    _finish(ax, title, xlabel=f"fraction of the {curve.get('ranked')} ranked nodes kept", ylabel="faithfulness")
    return _svg(fig, title)


def _evenly_thinned(count: int, most: int) -> list[int]:
    """Indices of `count` points, at most `most` of them evenly spread, first and last kept."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def _area(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    return f"{value:.2f}"


def _rank_labels(ranks: list | None, by_head: dict) -> list[str]:
    seen = {r for lines in by_head.values() for _, _, sweep in lines for r in sweep}
    if ranks:
        return [str(r) for r in ranks if str(r) in seen] + sorted(
            seen - {str(r) for r in ranks}, key=_rank_key)
    return sorted(seen, key=_rank_key)


def _rank_key(rank: str) -> tuple:
    return (1, 0, rank) if not rank.isdigit() else (0, int(rank), rank)


def _pattern(head: str, row) -> tuple[list[str], list[float]]:
    if not isinstance(row, dict) or not isinstance(row.get("tokens"), list) \
            or not isinstance(row.get("weights"), list):
        raise RenderError(f"attention pattern of '{head}' must have 'tokens' and 'weights' lists")
    tokens, weights = row["tokens"], row["weights"]
    if len(tokens) != len(weights):
        raise RenderError(f"attention pattern of '{head}' has {len(tokens)} tokens but "
                          f"{len(weights)} weights")
    return [str(t) for t in tokens], [_number_or_nan(w, f"{head} weight") for w in weights]


def _with_error(value: float, stderr) -> str:
    if isinstance(stderr, (int, float)) and not isinstance(stderr, bool) and math.isfinite(stderr):
        return f"{value:+.2f} \u00b1 {stderr:.2f}"
    return f"{value:+.2f}"


def _listed(values, where) -> list:
    """A list from the results, empty where it is missing."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise RenderError(f"'{where}' must be a list, not {type(values).__name__}")
    return values


def _number(value, where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RenderError(f"'{where}' has a non-numeric value: {value!r}")
    return float(value)


def _number_or_nan(value, where) -> float:
    """A number, or NaN (drawn blank) where the results hold null."""
    return math.nan if value is None else _number(value, where)


def _token(token: str) -> str:
    """A token as a tick label: spaces and newlines made visible, `$` kept literal."""
    return _text(token.replace(" ", "\u2423").replace("\n", "\\n"))


def _text(text: str) -> str:
    """Text matplotlib prints literally (a `$` would start mathtext)."""
    return str(text).replace("$", r"\$")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _finish(ax, title: str, *, xlabel: str = "", ylabel: str = "", grid: bool = True):
    ax.set_title(_text(title), fontsize=11)
    ax.set_xlabel(_text(xlabel))
    ax.set_ylabel(_text(ylabel))
    if grid:
        ax.grid(axis="x" if not ylabel else "y", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
    ax.figure.tight_layout()


def _svg(fig: Figure, salt: str) -> str:
    buffer = io.StringIO()
    with rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]
