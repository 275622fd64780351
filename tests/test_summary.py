"""The plain-text summary of a run: attention lines list the named positions that
hold the attention, or else the token the first prompt attends to."""
from circ.runtime.render.summary import summarize


def attention_results(values, patterns):
    return {"analyses": {"attn": {"kind": "attention", "dataset": "clean", "values": values,
                                  "patterns": patterns}},
            "circuits": {}, "expectations": []}


def test_attention_lines_name_where_the_heads_look():
    values = {"L0.H0": {"answer": 0.999, "labels": 0.0004, "self": 0.0},
              "L0.H2": {"answer": 0.001, "labels": 0.04, "self": 0.003},
              "L1.H2": {"labels": 0.58, "answer_label": 0.17, "options": 0.06, "self": 0.07}}
    patterns = {"L0.H2": {"tokens": ["<bos>", "answer", "label", ":"], "weights": [0.02, 0.01, 0.96, 0.01]}}
    text = summarize(attention_results(values, patterns))
    assert "  L0.H0: answer 1.00\n" in text
    assert "  L0.H2: no named position above 0.05; first prompt: 'label' (position 2) 0.96\n" in text
    assert "  L1.H2: labels 0.58, answer_label 0.17, self 0.07\n" in text


def test_a_grown_circuit_says_what_its_growth_measured():
    results = {"circuits": {"found": {"nodes": [{"id": "L1.H0"}], "edges": [],
                                      "faithfulness": {"level": "edges", "size": 3, "value": 0.95,
                                                       "reached": True, "target": 0.9}}}}
    assert "  grown by edges: 3 kept, faithfulness +0.9500 reaches 0.9" in summarize(results).splitlines()
