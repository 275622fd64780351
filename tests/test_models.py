"""Loading models the way a user's spec names them, and the errors for broken ones."""
import shutil

import pytest
import torch
from circ.compiler import ir
from circ.runtime.models.loading import ModelError, load_model
from conftest import build_tiny_model_dir, load_tiny


def hf_logits(folder, tokens):
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager")
    with torch.no_grad():
        return model(tokens).logits


def test_local_folder_loads_with_its_shape_and_raw_numerics(tiny, tiny_dir):
    assert tiny.shape == ir.Shape(n_layers=2, n_heads=4, d_model=32, d_head=8, d_vocab=len(tiny.tokenizer),
                                  n_ctx=24, d_mlp=128, has_mlp=True)
    assert (tiny.numerics, tiny.source, tiny.dtype, tiny.device) == ("raw", "hf", "float32", "cpu")
    tokens = torch.tensor([[0, 3, 4, 14, 15, 5, 4]])
    with torch.no_grad():
        ours = tiny.bridge(tokens)
    assert torch.allclose(ours, hf_logits(tiny_dir, tokens), atol=1e-4)


def test_compat_mode_folds_layer_norm_but_keeps_the_distribution(tiny_compat, tiny_dir):
    assert tiny_compat.numerics == "compat"
    tokens = torch.tensor([[0, 3, 4, 14, 15, 5, 4]])
    with torch.no_grad():
        ours = tiny_compat.bridge(tokens).log_softmax(-1)
    assert torch.allclose(ours, hf_logits(tiny_dir, tokens).log_softmax(-1), atol=1e-4)


def test_relative_location_resolves_against_the_spec_folder(tiny_dir, tmp_path, monkeypatch):
    from circ.compiler.api import compile_source

    spec = compile_source(f'model hf("{tiny_dir.name}")\n', str(tiny_dir.parent / "spec.circ"))
    monkeypatch.chdir(tmp_path)  # the compiler's resolution holds from any current folder
    loaded = load_model(spec.model, spec_dir=tiny_dir.parent)
    assert loaded.location == str(tiny_dir) and loaded.shape.n_layers == 2


def test_pickle_checkpoint_loads_without_unpickling_code(tmp_path):
    from transformers import GPT2LMHeadModel

    folder = build_tiny_model_dir(tmp_path / "m")
    (tmp_path / "bin").mkdir()
    torch.save(GPT2LMHeadModel.from_pretrained(folder).state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(folder / name, tmp_path / "bin" / name)
    assert not list((tmp_path / "bin").glob("*.safetensors"))
    loaded = load_tiny(tmp_path / "bin")
    tokens = torch.tensor([[0, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(loaded.bridge(tokens), hf_logits(folder, tokens), atol=1e-4)


def test_cache_name_loads_offline(tiny_dir, tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--circ--tiny" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_dir, snapshot)
    (tmp_path / "hub" / "models--circ--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--circ--tiny" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_model(ir.Model(source="cache", location="circ/tiny"), spec_dir=tmp_path)
    assert loaded.name == "circ/tiny" and loaded.shape.d_model == 32
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        load_model(ir.Model(source="cache", location="circ/absent"), spec_dir=tmp_path)


def broken_copy(tiny_dir, tmp_path, remove=(), corrupt=None):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_dir, folder)
    for name in remove:
        (folder / name).unlink()
    if corrupt:
        (folder / corrupt).write_bytes(b"not a safetensors file at all")
    return folder


@pytest.mark.parametrize("remove, corrupt, fragment", [
    (("config.json",), None, "has no config.json"),
    (("model.safetensors",), None, "has no weights"),
    (("tokenizer.json", "tokenizer_config.json"), None, "has no tokenizer files"),
    ((), "model.safetensors", "cannot load the model"),
])
def test_broken_folders_give_one_line_errors(tiny_dir, tmp_path, remove, corrupt, fragment):
    folder = broken_copy(tiny_dir, tmp_path, remove, corrupt)
    with pytest.raises(ModelError) as caught:
        load_tiny(folder)
    assert fragment in caught.value.message and "\n" not in caught.value.message


@pytest.mark.parametrize("model, fragment", [
    (ir.Model(source="hf", location="does/not/exist"), "does not exist"),
    (ir.Model(source="hf"), "needs a location"),
    (ir.Model(source="zip", location="x"), "unknown model source"),
    (ir.Model(source="hf", location="x", dtype="int3"), "unknown dtype"),
    (ir.Model(source="gguf", location="absent.gguf"), "does not exist"),
])
def test_bad_model_entries(tmp_path, model, fragment):
    with pytest.raises(ModelError, match=fragment):
        load_model(model, spec_dir=tmp_path)


def test_separate_tokenizer_location(tiny_dir, tmp_path):
    folder = broken_copy(tiny_dir, tmp_path, remove=("tokenizer.json", "tokenizer_config.json"))
    loaded = load_model(ir.Model(source="hf", location=str(folder), tokenizer=str(tiny_dir)), spec_dir=tmp_path)
    assert loaded.tokenizer("the cat", add_special_tokens=False)["input_ids"] == [9, 14]


def write_gguf(folder):
    """A random byte-level GPT-2 written as a GGUF file the way llama.cpp lays it out
    (GGUF's GPT-2 reader expects 1024 positions); returns the file and the HF model."""
    gguf = pytest.importorskip("gguf")
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = list(bytes_to_unicode().values()) + ["ĠA", "ĠB"]
    config = GPT2Config(vocab_size=len(tokens), n_positions=1024, n_embd=32, n_layer=2, n_head=4)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).eval()
    weights = {name: value.detach().float().numpy() for name, value in model.state_dict().items()}
    writer = gguf.GGUFWriter(str(folder / "tiny.gguf"), "gpt2")
    writer.add_block_count(2)
    writer.add_context_length(1024)
    writer.add_embedding_length(32)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_layer_norm_eps(config.layer_norm_epsilon)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges(["Ġ A", "Ġ B"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_tensor("token_embd.weight", weights["transformer.wte.weight"])
    writer.add_tensor("position_embd.weight", weights["transformer.wpe.weight"])
    writer.add_tensor("output.weight", weights["lm_head.weight"])
    for suffix in ("weight", "bias"):
        writer.add_tensor(f"output_norm.{suffix}", weights[f"transformer.ln_f.{suffix}"])
    for layer in range(2):
        prefix = f"transformer.h.{layer}."
        for ours, theirs in {"attn_norm": "ln_1", "ffn_norm": "ln_2", "attn_qkv": "attn.c_attn",
                             "attn_output": "attn.c_proj", "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}.items():
            weight = weights[prefix + theirs + ".weight"]
            writer.add_tensor(f"blk.{layer}.{ours}.weight", weight if weight.ndim == 1 else weight.T.copy())
            writer.add_tensor(f"blk.{layer}.{ours}.bias", weights[prefix + theirs + ".bias"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


def test_gguf_file_loads_through_transformers(tmp_path, monkeypatch):
    reference = write_gguf(tmp_path)
    monkeypatch.chdir(tmp_path)  # locations arrive resolved by the compiler: here, relative to the cwd
    loaded = load_model(ir.Model(source="gguf", location="tiny.gguf"), spec_dir=tmp_path / "elsewhere")
    assert loaded.name == "tiny.gguf" and loaded.shape.d_vocab == 258 and loaded.shape.n_layers == 2
    assert loaded.tokenizer(" A B", add_special_tokens=False)["input_ids"] == [256, 257]
    tokens = torch.tensor([[0, 70, 80, 256, 257]])
    with torch.no_grad():
        assert torch.allclose(loaded.bridge(tokens), reference(tokens).logits, atol=1e-5)


def test_demo_source_loads_the_embedded_folder(tiny_dir, tmp_path, monkeypatch):
    import circ.runtime.models.demo_model as demo

    monkeypatch.setattr(demo, "demo_model_dir", lambda: tiny_dir)
    loaded = load_model(ir.Model(source="demo"), spec_dir=tmp_path)
    assert (loaded.name, loaded.source, loaded.shape.n_layers) == ("demo", "demo", 2)
    monkeypatch.setattr(demo, "demo_model_dir", lambda: tmp_path)
    with pytest.raises(ModelError, match="demo model's files are missing"):
        load_model(ir.Model(source="demo"), spec_dir=tmp_path)
