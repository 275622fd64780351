"""The config-built test models: the architecture each family promises, a tokenizer
that splits words the way a real byte-level BPE does, and the bridge computing what
the Hugging Face model computes."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tokenizer_has_spaced_labels_as_single_tokens_and_splits_rare_words(bpe_models):
    tokenizer = bpe_models["llama"].tokenizer
    for label in (" A", " B", " C", " D"):
        assert len(tokenizer(label, add_special_tokens=False)["input_ids"]) == 1
    assert tokenizer(" A", add_special_tokens=False)["input_ids"] != tokenizer("A", add_special_tokens=False)["input_ids"]
    assert len(tokenizer(" paper", add_special_tokens=False)["input_ids"]) > 1


def test_llama_is_bias_free_grouped_query_rmsnorm(bpe_models):
    cfg = bpe_models["llama"].bridge.cfg
    assert cfg.normalization_type.startswith("RMS")
    assert cfg.n_heads == 4 and cfg.n_key_value_heads == 2
    hf = bpe_models["llama"].bridge.original_model
    assert not any(name.endswith("bias") for name, _ in hf.named_parameters())
    assert bpe_models["gpt2"].bridge.cfg.normalization_type == "LN"


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_bridge_logits_equal_the_hugging_face_model(bpe_models, family):
    loaded = bpe_models[family]
    tokens = loaded.tokenizer("question : which animal says moo ? A : cow label :", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = loaded.bridge.original_model(tokens).logits
        got = loaded.bridge(tokens)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
