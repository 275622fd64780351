"""Device maps: parsing the accelerate forms, and runs of a model spread over cpu and
disk that give the numbers of a single-device run."""
import io
import json
from pathlib import Path

import pytest
import torch
from circ.runtime.models.device_maps import (
    DeviceMapError,
    is_offloaded,
    named_weights,
    parse_device_map,
    placement_kwargs,
    readable_weights,
)
from conftest import build_tiny_model_dir, mcq_examples, write_jsonl

from circ.cli.run import run_spec

CPU_DISK = {"transformer.wte": "cpu", "transformer.wpe": "cpu", "transformer.h.0": "cpu",
            "transformer.h.1": "disk", "transformer.ln_f": "disk", "lm_head": "cpu"}


# --------------------------------------------------------------------------- parsing
def test_strategies_json_text_and_files(tmp_path):
    assert parse_device_map("auto") == "auto" and parse_device_map(" balanced ") == "balanced"
    two_gpus = {"transformer.h.0": 0, "lm_head": "cuda:1"}
    assert parse_device_map(json.dumps(two_gpus)) == two_gpus
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "split.json").write_text(json.dumps(CPU_DISK))
    assert parse_device_map("maps/split.json", tmp_path) == CPU_DISK


@pytest.mark.parametrize("text, message", [
    ("everywhere", "is not auto, balanced, balanced_low_0, sequential, a JSON object or a file"),
    ("{bad", "the device map is not valid JSON"),
    ('{"lm_head": "gpu7"}', "module 'lm_head' has device 'gpu7'; use a GPU index, cuda, cuda:N, mps, cpu or disk"),
    ('{"lm_head": -1}', "module 'lm_head' has device -1"),
    ("{}", "must be a JSON object from module names to devices"),
])
def test_bad_maps_are_one_line_errors(text, message):
    with pytest.raises(DeviceMapError, match=message.replace("(", r"\(")):
        parse_device_map(text)


def test_placement_arguments():
    assert placement_kwargs(None, "cuda:1") == {"device": "cuda:1"}
    assert placement_kwargs((("lm_head", "cpu"),), "cpu") == {"device_map": {"lm_head": "cpu"}}
    disk = placement_kwargs(json.dumps(CPU_DISK), "cpu")
    assert disk["device_map"] == CPU_DISK and Path(disk["offload_folder"]).is_dir()
    assert "offload_folder" in placement_kwargs("auto", "cpu")


def test_a_bad_map_in_a_spec_is_a_diagnostic_at_the_model_line(spec_folder):
    (spec_folder / "s.circ").write_text('model hf("model", device_map="nowhere.json")\n' + BODY)
    stderr = io.StringIO()
    assert run_spec(str(spec_folder / "s.circ"), str(spec_folder / "bad"), model=None, device=None, batch_size=4,
                    seed=0, trust_remote_code=False, progress=False, stderr=stderr) == 2
    error = stderr.getvalue()
    assert "s.circ:1:1: error[E600]: device map 'nowhere.json' is not auto" in error
    assert "Traceback" not in error


# --------------------------------------------------------------------------- the model spread over cpu and disk
def test_offloaded_weights_read_inside_readable_weights(tiny_dir, tiny):
    from circ.compiler import ir
    from circ.runtime.models.loading import load_model

    spread = load_model(ir.Model(source="hf", location=str(tiny_dir), device_map=json.dumps(CPU_DISK)),
                        spec_dir=tiny_dir)
    assert is_offloaded(spread.bridge) and not is_offloaded(tiny.bridge)
    with readable_weights(spread.bridge):
        for name in ("W_O", "b_O", "W_Q", "W_U"):
            assert torch.equal(getattr(spread.bridge, name), getattr(tiny.bridge, name)), name
    expected = dict(tiny.bridge.original_model.named_parameters())
    walked = {name: weight.clone() for name, weight in named_weights(spread.bridge.original_model)}
    assert walked.keys() == expected.keys()
    assert all(torch.equal(walked[name], expected[name]) for name in expected)
    tokens = torch.tensor([[0, 3, 4, 14, 15, 6, 10, 7, 16, 5, 4]])
    with torch.no_grad():
        logits, cache = spread.bridge.run_with_cache(tokens, names_filter=["blocks.1.attn.hook_z"])
        expected_logits, hooked = tiny.bridge.run_with_cache(tokens, names_filter=["blocks.1.attn.hook_z"])
    assert torch.allclose(logits, expected_logits, atol=1e-6)
    assert torch.allclose(cache["blocks.1.attn.hook_z"], hooked["blocks.1.attn.hook_z"], atol=1e-6)


BODY = '''data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis attn = attention(heads, on=clean, query=last)
analysis paths = path_patch([L0.H1, L0.MLP], to=[L1.H2, L1.MLP], source=corrupt, target=clean, metric=ld)
analysis low = subspace(L1.H0, parts=[v], ranks=[1, full], fit=clean, metric=ld)
expect faithfulness([L0.H0, L1.H3, L1.MLP], on=clean, ablate=mean(clean), metric=ld) >= -1000
'''
WEIGHT_READERS = '''data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads + mlps, on=clean, metric=ld)
analysis patched = patch(heads + mlps, source=corrupt, target=clean, metric=ld, effect=direct)
'''


def _write_data(folder):
    write_jsonl(folder / "data.jsonl", mcq_examples(8, seed=4, ragged=True))


def _results(folder, name, model_line, body, device_map=None):
    """results.json's analyses and expectations, from `circ run`."""
    (folder / f"{name}.circ").write_text(model_line + "\n" + body)
    code = run_spec(str(folder / f"{name}.circ"), str(folder / name), model=None, device=None, batch_size=3, seed=0,
                    trust_remote_code=False, progress=False, device_map=device_map)
    assert code == 0
    results = json.loads((folder / name / "results.json").read_text())
    return results["analyses"], results["expectations"]


def _differences(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        return [d for k in a for d in _differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float):
        return [] if abs(a - b) <= 1e-6 else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.fixture(scope="module")
def spec_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("maps")
    build_tiny_model_dir(folder / "model")
    _write_data(folder)
    (folder / "cpu_disk.json").write_text(json.dumps(CPU_DISK))
    return folder


def test_a_cpu_disk_map_gives_the_single_device_results(spec_folder):
    single = _results(spec_folder, "single", 'model hf("model")', BODY)
    in_spec = _results(spec_folder, "in_spec", 'model hf("model", device_map="cpu_disk.json")', BODY)
    assert _differences(single, in_spec) == []
    assert single[0]["paths"]["values"] and single[0]["low"]["values"]


def test_an_explicit_cpu_map_runs_the_analyses_that_read_weights_as_one_device(spec_folder):
    single = _results(spec_folder, "single_all", 'model hf("model")', WEIGHT_READERS)
    cpu_map = {module: "cpu" for module in CPU_DISK}
    spread = _results(spec_folder, "cpu_map", 'model hf("model")', WEIGHT_READERS, device_map=json.dumps(cpu_map))
    assert _differences(single, spread) == []
    assert len(single[0]["patched"]["values"]) == 10 and len(single[0]["dla"]["values"]) == 11


def test_a_cpu_disk_map_runs_the_analyses_that_read_weights_as_one_device(spec_folder):
    body = WEIGHT_READERS + "analysis total = patch(heads + mlps, source=corrupt, target=clean, metric=ld)\n"
    single = _results(spec_folder, "single_readers", 'model hf("model")', body)
    offloaded = _results(spec_folder, "disk_readers", 'model hf("model", device_map="cpu_disk.json")', body)
    assert _differences(single, offloaded) == []
    assert all(len(single[0][name]["values"]) >= 10 for name in ("dla", "patched", "total"))


def test_the_fast_kernel_leaves_offloaded_models_to_the_hook_kernel(tiny_dir):
    from circ.compiler import ir
    from circ.runtime.analyses.common import AnalysisError
    from circ.runtime.analyses.resumed_blocks import resumer_for
    from circ.runtime.models.loading import load_model

    spread = load_model(ir.Model(source="hf", location=str(tiny_dir), device_map=json.dumps(CPU_DISK)),
                        spec_dir=tiny_dir)
    assert resumer_for(spread, None, "auto") is None
    with pytest.raises(AnalysisError, match="the fast kernel cannot run this model: some of its weights are offloaded"):
        resumer_for(spread, None, "fast")
