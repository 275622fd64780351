"""Edge scores on the demo model against exact path patching: for EAP and EAP-IG
(steps=5), sign agreement and Spearman rank correlation on the exact edges with the
largest |effect| (q, k and v scores of a head summed to compare with path patching's
whole-head receivers; edges into LOGITS have no exact counterpart here)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from circ import api

SPEC = '''spec "edges-vs-exact"
model demo
data clean = mcq(n=16, seed=0)
data moved = clean.move_answer(seed=3)
metric ld = logit_diff(answer, wrong) at last
analysis eap   = edges(heads + mlps + embed, source=moved, target=clean, metric=ld)
analysis ig    = edges(heads + mlps + embed, source=moved, target=clean, metric=ld, method=eap_ig, steps=5)
analysis exact = path_patch(heads + mlps + embed, to=heads + mlps, source=moved, target=clean, metric=ld)
'''


def ranks(values: list[float]) -> list[int]:
    out = [0] * len(values)
    for rank, index in enumerate(sorted(range(len(values)), key=values.__getitem__)):
        out[index] = rank
    return out


def spearman(a: list[float], b: list[float]) -> float:
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ranks(a), ranks(b))) / (n * (n * n - 1))


def whole_heads(values: dict) -> dict:
    out: dict[str, float] = {}
    for key, value in values.items():
        src, dst = key.split("->")
        if dst != "LOGITS":
            key = f"{src}->{dst.rsplit('.', 1)[0] if dst.count('.') == 2 else dst}"
            out[key] = out.get(key, 0.0) + value
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "edges.circ"
        path.write_text(SPEC)
        analyses = api.run(path, progress=False).data["analyses"]
    exact = analyses["exact"]["values"]
    order = sorted(exact, key=lambda k: -abs(exact[k]))
    for name in ("eap", "ig"):
        estimate = whole_heads(analyses[name]["values"])
        for top in (10, 20, len(order)):
            keys = order[:top]
            agree = sum(estimate[k] * exact[k] > 0 for k in keys)
            rho = spearman([estimate[k] for k in keys], [exact[k] for k in keys])
            print(f"{name}: strongest {top} of {len(order)} exact edges: sign agreement {agree}/{top}, "
                  f"Spearman {rho:.3f}")


if __name__ == "__main__":
    main()
