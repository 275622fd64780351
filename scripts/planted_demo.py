"""Run circ end to end on a small model built for the purpose: a two-layer GPT-2
whose weights hold a hand-planted circuit (a previous-token head feeding a copying
head; see tests/planted_model.py). It writes the model folder, a JSONL dataset and a
spec into OUT, then runs `circ run` on them: results.json, the diagram, report.html.

    python scripts/planted_demo.py [OUT]
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from planted_model import build_planted_model_dir, marker_records  # noqa: E402

SPEC = '''# The planted copying circuit: which heads move the word after the marker to the output?
spec "planted-copy"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last

analysis dla     = attribute(EMBED + heads + mlps, on=clean, metric=ld)
analysis patched = patch(heads + mlps, source=corrupt, target=clean, metric=ld)
analysis direct  = patch(heads + mlps, source=corrupt, target=clean, metric=ld, effect=direct)
analysis paths   = path_patch(L0.*, to=[L1.H1.q, L1.H1.k, L1.H1.v], source=corrupt, target=clean, metric=ld)

circuit found = top(patched, 5) where abs(effect) > 0.2
categories found {
  copier         = attends(after_marker) > 0.9
  previous_token = attends(last_word) > 0.9
}

expect faithfulness(found, on=clean, ablate=mean(clean), metric=ld) >= 0.9
expect dla[L1.H1] > 1
render found to "circuit.svg"
'''


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "model" / "config.json").is_file():
        build_planted_model_dir(out / "model")
    with open(out / "data.jsonl", "w", encoding="utf-8") as handle:
        for record in marker_records(32, seed=1):
            handle.write(json.dumps(record) + "\n")
    (out / "planted_copy.circ").write_text(SPEC, encoding="utf-8")
    circ = Path(sys.executable).with_name("circ")
    return subprocess.call([str(circ), "run", str(out / "planted_copy.circ"), "--out", str(out / "run")])


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/planted_copy")))
