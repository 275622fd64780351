"""The one table of builtin signatures: models, dataset generators and derivations,
metrics, analyses, patch sources, selections, rule functions and accessors.

Each `Param` names the argument type that `binding.py` converts it with; adding a
builtin is adding a row here, never new dispatch code.
"""
from __future__ import annotations

from dataclasses import dataclass

from circ.compiler import ir
from circ.compiler.ir import ALL, LAST


@dataclass(frozen=True)
class Param:
    """One argument. `into` names the Analysis field it fills ("nodes", "dataset",
    "metric", "source", "receivers"); otherwise it is stored as an option or
    parameter under `key` (default: its name). `default` None means absent."""

    name: str
    type: str
    required: bool = False
    default: object = None
    positional: bool = False
    choices: tuple[str, ...] = ()
    into: str | None = None
    key: str | None = None
    node_kinds: tuple[str, ...] = ()
    doc: str = ""

    @property
    def store_as(self) -> str:
        return self.key or self.name


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[Param, ...]
    doc: str = ""
    metric_kinds: tuple[str, ...] | None = None  # for analyses: allowed metric kinds
    allow_normalized: bool = True
    dataset_param: str | None = None  # for analyses: the argument naming the dataset
    positions: tuple[str, ...] = ()  # for generators and derivations: the positions every prompt names

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


DTYPES = ("float32", "float16", "bfloat16", "float64")
LABEL_WORDS = ("random_letters", "numbers", "shuffled")
PARTS = ("q", "k", "v")
ATTENTION_SCORES = ("induction", "previous_token")
SELECTABLE_KINDS = ("attribute", "patch")  # and attention with a score: see `scores_nodes`
NO_SCORE_HINT = "per-node scores come from attribute, patch and attention(..., score=...) analyses"
NODE_WORDS = ("heads", "mlps", "resid", "embed", "EMBED")
SOURCE_WORDS = ("corrupt", "zero")
RESERVED = frozenset(NODE_WORDS + SOURCE_WORDS + ("effect", "true", "false"))
RENDER_FORMATS = ("svg", "png", "dot", "pdf")

# Positions every dataset has, and those attends() reads besides a dataset's own
# (see runtime/analyses/attention.py): the BOS token and the query itself.
BUILTIN_POSITIONS = ("last", "all")
ATTENTION_POSITIONS = ("bos", "self")

# The named positions of each generator's prompts (runtime/data/mcq.py and
# induction.py mark exactly these; tests/test_positions.py holds them to it).
MCQ_POSITIONS = ("answer", "answer_label", "answer_text", "final", "labels", "options")
INDUCTION_POSITIONS = ("final", "induction_target", "previous")

_COMPONENTS = ("embed", "head", "mlp")

_MODEL_OPTIONS = (
    Param("dtype", "choice", default="float32", choices=DTYPES, doc="weights' dtype"),
    Param("device", "device", default="cpu", doc="cpu, cuda, cuda:N or mps"),
    Param("device_map", "string", doc="transformers device_map, e.g. \"auto\""),
    Param("compat", "bool", default=False, doc="fold LayerNorm like HookedTransformer"),
)

MODELS = {
    "demo": Signature("demo", _MODEL_OPTIONS[:2] + _MODEL_OPTIONS[3:], "the embedded demo model"),
    "hf": Signature("hf", (Param("location", "path", True, positional=True),) + _MODEL_OPTIONS,
                    "a local Hugging Face directory"),
    "cache": Signature("cache", (Param("location", "string", True, positional=True),) + _MODEL_OPTIONS,
                       "a model name in the local Hugging Face cache"),
    "gguf": Signature("gguf", (Param("location", "path", True, positional=True),
                               Param("tokenizer", "path_or_name")) + _MODEL_OPTIONS,
                      "a GGUF file, with a tokenizer directory or name"),
}

GENERATORS = {
    "mcq": Signature("mcq", (
        Param("n", "posint", True, doc="number of prompts"),
        Param("labels", "labels", default="ABCD", doc="label characters or a label scheme"),
        Param("seed", "int", default=0),
        Param("options", "posint", doc="options per prompt (default: one per label, or 4)"),
    ), "multiple-choice prompts", positions=MCQ_POSITIONS),
    "induction": Signature("induction", (
        Param("n", "posint", True),
        Param("length", "posint", default=12, doc="tokens per sequence (half repeated)"),
        Param("seed", "int", default=0),
    ), "repeated random word sequences", positions=INDUCTION_POSITIONS),
    "repeated_tokens": Signature("repeated_tokens", (
        Param("n", "posint", True),
        Param("length", "posint", default=12, doc="tokens per sequence (half repeated)"),
        Param("seed", "int", default=0),
    ), "repeated random sequences of the model's own tokens", positions=INDUCTION_POSITIONS),
    "jsonl": Signature("jsonl", (
        Param("path", "path", True, positional=True),
        Param("n", "posint", doc="keep only the first n prompts"),
    ), "a JSONL file of prompts"),
    "autocircuit": Signature("autocircuit", (
        Param("path", "path", True, positional=True),
        Param("n", "posint"),
    ), "an auto-circuit JSON dataset"),
}

DERIVATIONS = {
    "move_answer": Signature("move_answer", (Param("seed", "int", default=0),),
                             "the same questions with the answer under another label",
                             positions=MCQ_POSITIONS),
    "shuffle_answers": Signature("shuffle_answers", (Param("seed", "int", default=0),),
                                 "the same questions with the answer options shuffled",
                                 positions=MCQ_POSITIONS),
    "relabel": Signature("relabel", (Param("labels", "labels", True), Param("seed", "int", default=0)),
                         "the same questions with other labels", positions=MCQ_POSITIONS),
}

METRICS = {
    "logit_diff": Signature("logit_diff", (
        Param("answer", "choice", default="answer", positional=True, choices=("answer",)),
        Param("wrong", "choice", default="wrong", positional=True, choices=("wrong",)),
    ), "logit of the answer minus the mean logit of the wrong answers"),
    "prob": Signature("prob", (Param("answer", "choice", default="answer", positional=True,
                                     choices=("answer",)),), "probability of the answer"),
    "logprob": Signature("logprob", (Param("answer", "choice", default="answer", positional=True,
                                           choices=("answer",)),), "log-probability of the answer"),
    "accuracy": Signature("accuracy", (), "1 when the answer has the highest logit among the options"),
    "kl": Signature("kl", (), "KL divergence from the clean run's next-token distribution"),
    "loss": Signature("loss", (), "next-token cross-entropy"),
    "answer_logprob": Signature("answer_logprob", (Param("answer", "choice", default="answer", positional=True,
                                                         choices=("answer",)),),
                                "log-probability of the whole answer: the sum over its tokens, each read at "
                                "the position before it"),
    "normalized": Signature("normalized", (Param("metric", "metric", True, positional=True),),
                            "(x - corrupt) / (clean - corrupt) of another metric"),
}

ANALYSES = {
    "attribute": Signature("attribute", (
        Param("nodes", "nodes", True, positional=True, into="nodes", node_kinds=_COMPONENTS),
        Param("on", "dataset", True, into="dataset"),
        Param("metric", "metric", True, into="metric"),
        Param("at", "patch_position", key="position",
              doc="each (or a list of positions): also the attribution of the metric read at each position"),
    ), "direct logit attribution", metric_kinds=("logit_diff",), allow_normalized=False,
        dataset_param="on"),
    "patch": Signature("patch", (
        Param("nodes", "nodes", True, positional=True, into="nodes",
              node_kinds=_COMPONENTS + ("resid", "head_input")),
        Param("source", "source", True, into="source"),
        Param("target", "dataset", True, into="dataset"),
        Param("metric", "metric", True, into="metric"),
        Param("effect", "choice", default="total", choices=("total", "direct")),
        Param("method", "choice", default="exact", choices=("exact", "attribution")),
        Param("verify", "int", doc="with method=attribution: re-run the k strongest exactly"),
        Param("steps", "posint", doc="with method=attribution: integrate gradients over k points toward the source"),
        Param("at", "patch_position", default=ALL, key="position",
              doc="each: one value per node and token position"),
    ), "activation patching", dataset_param="target"),
    "path_patch": Signature("path_patch", (
        Param("nodes", "nodes", True, positional=True, into="nodes", node_kinds=_COMPONENTS),
        Param("to", "nodes", True, into="receivers", node_kinds=("head", "head_input", "mlp")),
        Param("source", "source", True, into="source"),
        Param("target", "dataset", True, into="dataset"),
        Param("metric", "metric", True, into="metric"),
        Param("at", "position", default=ALL, key="position"),
    ), "path patching from senders to receivers", dataset_param="target"),
    "edges": Signature("edges", (
        Param("nodes", "nodes", True, positional=True, into="nodes", node_kinds=_COMPONENTS),
        Param("source", "source", True, into="source"),
        Param("target", "dataset", True, into="dataset"),
        Param("metric", "metric", True, into="metric"),
        Param("method", "choice", default="eap", choices=("eap", "eap_ig")),
        Param("steps", "posint", doc="with method=eap_ig: points between the clean and the source inputs (default 5)"),
        Param("at", "position", default=ALL, key="position"),
    ), "a score for every edge among the nodes and into the logits", allow_normalized=False,
        dataset_param="target"),
    "attention": Signature("attention", (
        Param("nodes", "nodes", True, positional=True, into="nodes", node_kinds=("head",)),
        Param("on", "dataset", True, into="dataset"),
        Param("query", "position", default=LAST, doc="all with score="),
        Param("explore", "posint", default=8,
              doc="prompts whose whole patterns the report's attention explorer shows"),
        Param("score", "choice", choices=ATTENTION_SCORES,
              doc="one score per head over every query: induction or previous_token"),
    ), "attention patterns, or a per-head attention score over every query", dataset_param="on"),
    "faithfulness": Signature("faithfulness", (
        Param("nodes", "nodes", True, positional=True, into="nodes", node_kinds=_COMPONENTS),
        Param("on", "dataset", True, into="dataset"),
        Param("ablate", "source", into="source", doc="default: mean(<on>)"),
        Param("metric", "metric", True, into="metric"),
    ), "metric recovered by the nodes alone, everything else ablated", dataset_param="on"),
    "curve": Signature("curve", (
        Param("nodes", "expr", True, positional=True, into="nodes",
              doc="an analysis with one score per node: its ranking by |score|"),
        Param("on", "dataset", True, into="dataset"),
        Param("ablate", "source", into="source", doc="default: mean(<on>)"),
        Param("metric", "metric", True, into="metric"),
        Param("points", "posint", default=10, doc="circuit sizes besides the empty one, evenly spaced"),
        Param("sizes", "sizes", doc="the circuit sizes to measure instead of `points`"),
        Param("random", "posint", default=5, doc="random orders averaged into the baseline"),
        Param("seed", "int", default=0, doc="seed of the random orders"),
        Param("target", "number", default=0.9, doc="the faithfulness whose smallest size is reported"),
    ), "faithfulness of a ranking's growing prefixes and of random orders, with areas (CPR, CMD)",
        dataset_param="on"),
    "ablate": Signature("ablate", (
        Param("nodes", "nodes", True, positional=True, into="nodes", node_kinds=_COMPONENTS),
        Param("on", "dataset", True, into="dataset"),
        Param("with", "source", into="source", doc="default: mean(<on>)"),
        Param("metric", "metric", True, into="metric"),
    ), "the metric with the nodes ablated together, against the clean run", allow_normalized=False,
        dataset_param="on"),
    "subspace": Signature("subspace", (
        Param("nodes", "nodes", True, positional=True, into="nodes", node_kinds=("head",)),
        Param("parts", "parts", default=PARTS),
        Param("ranks", "ranks", True),
        Param("fit", "dataset", True, into="dataset"),
        Param("eval", "datasets", default=()),
        Param("metric", "metric", True, into="metric"),
        Param("ablate", "source", into="source", doc="default: mean(<fit>)"),
    ), "low-rank q/k/v subspace fits over a sweep of ranks", dataset_param="fit"),
}

SOURCES = {
    "mean": Signature("mean", (Param("dataset", "dataset", True, positional=True),),
                      "mean activation over a dataset"),
    "resample": Signature("resample", (Param("dataset", "dataset", True, positional=True),
                                       Param("seed", "int", default=0)),
                          "activation of a random prompt of a dataset"),
}

SELECTIONS = {
    "top": Signature("top", (Param("from", "expr", True, positional=True),
                             Param("k", "posint", True, positional=True)),
                     "the k nodes with the largest |score|"),
    "best": Signature("best", (Param("from", "expr", True, positional=True),),
                      "the single node with the largest |score|"),
    "discover": Signature("discover", (Param("from", "expr", True, positional=True),
                                       Param("top", "posint"),
                                       Param("faithfulness", "number")),
                          "the `top` edges of an edges analysis by |score|, with their end nodes; or "
                          "the shortest prefix of a per-node ranking whose faithfulness reaches a target"),
}

RULE_FUNCTIONS = ("abs", "attends", "spread")


def scores_nodes(analysis: ir.Analysis) -> bool:
    """Whether an analysis gives one number per node, to select nodes by and read in rules:
    attribution, patching, and attention with a score."""
    return analysis.kind in SELECTABLE_KINDS or (
        analysis.kind == "attention" and analysis.option("score") is not None)


def ranks_components(analysis: ir.Analysis | None) -> bool:
    """Whether a ranking analysis may score a head or MLP: False only for a node list
    known to hold neither (an edges analysis ranks edges)."""
    if analysis is None or analysis.kind == "edges" or not isinstance(analysis.nodes, ir.NodeList):
        return True
    nodes = analysis.nodes
    return nodes.unexpanded is not None or any(n.kind in ("head", "mlp") for n in nodes.nodes)


# Accessors an expectation may read, per analysis kind.
ACCESSORS = {
    "attribute": ("node", "total", "rank"),
    "patch": ("node", "rank"),
    "path_patch": ("edge",),
    "edges": ("edge",),
    "attention": ("attention",),
    "faithfulness": ("value",),
    "curve": ("cpr", "cmd", "size_at"),
    "ablate": ("value",),
    "subspace": ("recovered",),
}


def accessors(analysis: ir.Analysis) -> tuple[str, ...]:
    """What an expectation may read from `analysis`: its kind's accessors; an attention
    score gives one number per head ([NODE]), not patterns."""
    if analysis.kind == "attention" and analysis.option("score") is not None:
        return ("node",)
    return ACCESSORS[analysis.kind]


RECOVERED = Signature("recovered", (
    Param("dataset", "dataset_name", True, positional=True),
    Param("rank", "rank_bound", True),
), "best fraction recovered among the ranks that satisfy the bound")

# Numbers an expectation may compute that are no analysis accessor.
QUANTITIES = {
    "count": Signature("count", (Param("nodes", "expr", True, positional=True),),
                       "the number of nodes in a node set"),
    "accuracy": Signature("accuracy", (Param("on", "dataset", True, positional=True),),
                          "share of prompts whose answer has the top logit among the options"),
    "metric": Signature("metric", (Param("metric", "metric", True, positional=True),
                                   Param("on", "dataset", True)),
                        "the metric's mean over the dataset's clean run"),
    "rank": Signature("rank", (Param("analysis", "expr", True, positional=True),
                               Param("node", "expr", True, positional=True)),
                      "1-based rank of a node by |value| within an attribute or patch analysis"),
}
