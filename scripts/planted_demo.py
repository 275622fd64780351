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

from planted_model import build_planted_model_dir, marker_records, spec_text  # noqa: E402

def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "model" / "config.json").is_file():
        build_planted_model_dir(out / "model")
    with open(out / "data.jsonl", "w", encoding="utf-8") as handle:
        for record in marker_records(32, seed=1):
            handle.write(json.dumps(record) + "\n")
    (out / "planted_copy.circ").write_text(spec_text(), encoding="utf-8")
    circ = Path(sys.executable).with_name("circ")
    return subprocess.call([str(circ), "run", str(out / "planted_copy.circ"), "--out", str(out / "run")])


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/planted_copy")))
