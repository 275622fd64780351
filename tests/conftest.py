"""Shared fixtures: a tiny random GPT-2 saved as a Hugging Face folder, loaded the way
a user's model is, and small multiple-choice style datasets for it."""
from __future__ import annotations

import json
import random

import pytest
from circ.compiler import ir
from circ.runtime.data.examples import Example

WORDS = ["cat", "dog", "red", "blue", "green", "sun", "moon", "tree", "fish", "bird", "rock", "star"]
LABELS = ["A", "B", "C", "D"]
VOCAB = ["<bos>", "<pad>", "<unk>", "Question", ":", "Answer", "(", ")", "is", "the", *LABELS, *WORDS]


def build_tiny_model_dir(folder, *, n_layer=2, n_head=4, n_embd=32, n_positions=24, seed=0):
    """Save a random GPT-2 (every weight and bias perturbed, so LayerNorm weights and
    biases are not the trivial 1 and 0) with a word-level tokenizer into `folder`."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {word: index for index, word in enumerate(VOCAB)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<bos>",
                                        pad_token="<pad>", unk_token="<unk>", padding_side="right")
    config = GPT2Config(vocab_size=len(VOCAB), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, bos_token_id=0, eos_token_id=0, pad_token_id=1)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("wte.weight"):
                parameter.mul_(10.0)
            parameter.add_(torch.randn_like(parameter) * 0.2)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module's tests: the tiny model runs fastest so, and a
    fresh process on one thread sums floats in the same order."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-gpt2"))


def load_tiny(folder, *, compat=False):
    from circ.runtime.models.loading import load_model

    return load_model(ir.Model(source="hf", location=str(folder), compat=compat), spec_dir=folder)


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """The tiny model, raw numerics. Shared: tests must not change its weights."""
    return load_tiny(tiny_dir)


@pytest.fixture(scope="session")
def tiny_compat(tiny_dir):
    """The tiny model in compatibility mode (folded LayerNorm)."""
    return load_tiny(tiny_dir, compat=True)


@pytest.fixture
def fresh_tiny(tiny_dir):
    """A private copy of the tiny model whose weights a test may change."""
    return load_tiny(tiny_dir)


def mcq_examples(n, *, seed=0, ragged=False, corrupt=True):
    """Prompts like "Question : cat dog ( A ) red ( B ) blue Answer :" with the
    answer label after "Answer :" and marks for the labels and the answer label.
    `ragged` varies the prompt length; the corrupted prompt swaps the question words."""
    rng = random.Random(seed)
    examples = []
    for line in range(1, n + 1):
        question = rng.sample(WORDS, 2 + (line % 3 if ragged else 0))
        options = rng.sample(WORDS, 2)
        answer = rng.randrange(2)
        parts = ["Question", ":", *question]
        for label, option in zip(LABELS, options):
            parts += ["(", label, ")", option]
        parts += ["Answer", ":"]
        prompt = " ".join(parts)
        corrupted = prompt.replace(" ".join(question), " ".join(reversed(question)), 1)
        label_at = [prompt.index(f"( {label} )") + 2 for label in LABELS[:2]]
        examples.append(Example(
            prompt=prompt, answer=f" {LABELS[answer]}", wrong=(f" {LABELS[1 - answer]}",),
            corrupt=corrupted if corrupt else None,
            marks=(("labels", tuple(label_at)), ("answer_label", (label_at[answer],))),
            line=line,
        ))
    return examples


@pytest.fixture(scope="module")
def prompts(tiny):
    """Six tokenised multiple-choice prompts of varied length (a module may define its own)."""
    from circ.runtime.data.prompts import tokenize

    return tokenize(tiny, mcq_examples(6, ragged=True), source_name="clean")


@pytest.fixture(scope="module")
def corrupt(tiny, prompts):
    """The patch source of `prompts`' corrupted prompts."""
    from circ.runtime.analyses.patch_sources import make_source

    return make_source(tiny, prompts, ir.PatchSource("corrupt"), {})


@pytest.fixture(scope="module")
def planted_graph(tmp_path_factory):
    """The model of tests/planted_model.py (a circuit set by hand), 16 of its marker
    prompts tokenised, and every edge among its embedding, heads and MLPs:
    (model, clean prompts, edges)."""
    from circ.runtime.analyses.edge_circuit import graph_edges
    from circ.runtime.data.prompts import tokenize
    from circ.runtime.data.readers import read_jsonl
    from planted_model import build_planted_model_dir, marker_records

    folder = tmp_path_factory.mktemp("planted-graph")
    build_planted_model_dir(folder / "model")
    with open(folder / "data.jsonl", "w") as handle:
        for record in marker_records(16, seed=1):
            handle.write(json.dumps(record) + "\n")
    loaded = load_tiny(folder / "model")
    clean = tokenize(loaded, read_jsonl(folder / "data.jsonl"), source_name="clean")
    nodes = [ir.Node(0, "embed")] + [ir.Node(layer, "head", head) for layer in range(2) for head in range(4)] \
        + [ir.Node(0, "mlp"), ir.Node(1, "mlp")]
    return loaded, clean, graph_edges(loaded, nodes)


def write_jsonl(path, examples) -> None:
    """`examples` as a JSONL dataset file, every field a line can carry."""
    with open(path, "w") as handle:
        for e in examples:
            handle.write(json.dumps({"prompt": e.prompt, "answer": e.answer, "wrong": list(e.wrong),
                                     "corrupt": e.corrupt, "marks": {k: list(v) for k, v in e.marks}}) + "\n")


@pytest.fixture(scope="session")
def bpe_model_dirs(tmp_path_factory):
    """{family: folder} of the config-built Llama and GPT-2 models with a trained
    byte-level BPE tokenizer (tests/model_builders.py), built once per session."""
    from model_builders import FAMILIES, build_model_dir

    return {family: build_model_dir(tmp_path_factory.mktemp(f"bpe-{family}"), family) for family in FAMILIES}


@pytest.fixture(scope="session")
def bpe_models(bpe_model_dirs):
    """{family: LoadedModel} of those models, raw numerics. Shared: do not change weights."""
    return {family: load_tiny(folder) for family, folder in bpe_model_dirs.items()}


@pytest.fixture(params=("llama", "gpt2"))
def bpe_model(request, bpe_models):
    """Each family's model in turn."""
    return bpe_models[request.param]
