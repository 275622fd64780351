"""Bounded reads: config.json, specs and included files, device-map files are read
with a size limit and only when they are regular files (a link to /dev/zero, a FIFO
or a huge file never grows memory or blocks); a config whose shape needs more
memory than the machine has is refused before any weight is allocated."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from circ.compiler import ir
from circ.compiler.api import compile_source
from circ.compiler.bounded_read import JSON_LIMIT, SPEC_LIMIT
from circ.compiler.diagnostics import CircError
from circ.runtime.models import loading
from circ.runtime.models.device_maps import DeviceMapError, parse_device_map
from circ.runtime.models.memory_fit import available_bytes, minimum_parameters, shortfall

# Compiles a spec in a fresh process under a memory cap, so that a read without end
# fails the test instead of the machine.
COMPILE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))
from circ.compiler.api import compile_file
from circ.compiler.diagnostics import CircError
try:
    compile_file(sys.argv[1])
except CircError as error:
    print(error.render())
"""


def compile_apart(spec):
    done = subprocess.run([sys.executable, "-c", COMPILE, str(spec)], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def sparse(path, size):
    with open(path, "wb") as handle:
        handle.truncate(size)


@pytest.mark.parametrize("config", ["dev-zero", "fifo", "huge"])
def test_config_json_that_never_ends_is_an_error(tmp_path, config):
    model = tmp_path / "model"
    model.mkdir()
    if config == "dev-zero":
        (model / "config.json").symlink_to("/dev/zero")
    elif config == "fifo":
        os.mkfifo(model / "config.json")
    else:
        sparse(model / "config.json", JSON_LIMIT + 1)
    (tmp_path / "s.circ").write_text(f'model hf("{model}")\n')
    shown = compile_apart(tmp_path / "s.circ")
    assert "error[E506]" in shown
    assert ("larger than 16 MiB" if config == "huge" else "not a regular file") in shown


@pytest.mark.parametrize("content, reason", [("[" * 100000 + "]" * 100000, "nested too deeply"),
                                             ('{"n_layer": ' + "9" * 5000 + "}", "not valid JSON")])
def test_config_json_too_deep_or_with_huge_integers_is_an_error(tmp_path, content, reason):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(CircError) as caught:
        compile_source(f'model hf("{tmp_path}")\n', str(tmp_path / "s.circ"))
    assert [d.code for d in caught.value.diagnostics] == ["E506"]
    assert reason in caught.value.render()


@pytest.mark.parametrize("which", ["spec", "include"])
def test_spec_and_included_files_have_a_size_limit(tmp_path, which):
    sparse(tmp_path / "big.circ", SPEC_LIMIT + 1)
    (tmp_path / "s.circ").write_text('include "big.circ"\n')
    shown = compile_apart(tmp_path / ("big.circ" if which == "spec" else "s.circ"))
    assert f"{tmp_path / 'big.circ'}:1:1: error[E505]: cannot read" in shown and "larger than 16 MiB" in shown


def test_a_fifo_spec_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "s.circ")
    assert "error[E505]" in compile_apart(tmp_path / "s.circ")


@pytest.mark.parametrize("make, reason", [
    (lambda path: sparse(path, JSON_LIMIT + 1), "larger than 16 MiB"),
    (lambda path: os.mkfifo(path), "is not"),
    (lambda path: path.write_text("[" * 100000), "nested too deeply"),
    (lambda path: path.write_text('{"lm_head": ' + "1" * 5000 + "}"), "not valid JSON"),
])
def test_device_map_files_are_bounded_and_never_crash(tmp_path, make, reason):
    make(tmp_path / "map.json")
    with pytest.raises(DeviceMapError, match=reason):
        parse_device_map("map.json", tmp_path)


def test_inline_device_maps_too_deep_or_huge_are_errors():
    for text in ('{"a": ' + "[" * 100000 + "}", '{"a": ' + "7" * 5000 + "}"):
        with pytest.raises(DeviceMapError):
            parse_device_map(text)


def model_with(tiny_dir, folder, **sizes):
    model = folder / "model"
    shutil.copytree(tiny_dir, model)
    config = json.loads((model / "config.json").read_text())
    config.update(sizes)
    (model / "config.json").write_text(json.dumps(config))
    return model, config


def test_a_config_needing_more_memory_than_the_machine_has_is_refused_at_once(tmp_path, tiny_dir):
    model, config = model_with(tiny_dir, tmp_path, n_layer=3000, n_embd=16384, n_inner=65536, n_head=32)
    start = time.monotonic()
    with pytest.raises(loading.ModelError) as caught:
        loading.load_model(ir.Model(source="hf", location=str(model)), spec_dir=tmp_path)
    assert time.monotonic() - start < 10
    # query and output (32 heads of 512 = 16384) and the MLP's two matrices per layer, one embedding
    expected = 3000 * (2 * 16384 * 16384 + 2 * 16384 * 65536) + config["vocab_size"] * 16384
    assert f"at least {expected:,} parameters" in caught.value.message
    assert "of memory available on cpu" in caught.value.message


@pytest.mark.parametrize("sizes, reason", [({"n_layer": 200000, "n_head": 32}, "6,400,000 attention heads"),
                                           ({"vocab_size": 1 << 41}, "d_vocab is larger than 2**40")])
def test_a_config_beyond_any_model_is_refused_by_check_and_run(tmp_path, tiny_dir, sizes, reason):
    model, _ = model_with(tiny_dir, tmp_path, **sizes)
    start = time.monotonic()
    with pytest.raises(CircError) as caught:
        compile_source(f'model hf("{model}")\ndata clean = mcq(n=4)\nmetric ld = logit_diff at last\n'
                       "analysis a = attribute(heads, on=clean, metric=ld)\n", str(tmp_path / "s.circ"))
    assert [d.code for d in caught.value.diagnostics] == ["E511"] and reason in caught.value.render()
    with pytest.raises(loading.ModelError, match=re.escape(reason)):
        loading.load_model(ir.Model(source="hf", location=str(model)), spec_dir=tmp_path)
    assert time.monotonic() - start < 10


def test_the_parameter_bound_never_exceeds_a_real_model(tiny):
    shape = tiny.shape
    counted = sum(p.numel() for p in tiny.bridge.original_model.parameters())
    bound = minimum_parameters(shape)
    assert 0.5 * counted < bound <= counted


def test_gpu_memory_is_read_from_the_device_the_model_loads_to(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: ((5 << 30) if index == 1 else 0, 80 << 30))
    assert available_bytes("cuda:1") == 5 << 30
    shape = ir.Shape(n_layers=32, n_heads=32, d_model=4096, d_head=128, d_vocab=32000, n_ctx=4096, d_mlp=11008)
    reason = shortfall(shape, "float16", "cuda:1")  # at least 4.1 billion parameters, 7.6 GiB in float16
    assert reason is not None and "5.0 GiB of memory available on cuda:1" in reason
    assert shortfall(replace(shape, n_layers=2), "float16", "cuda:1") is None


@pytest.mark.parametrize("command", [["render", "-o", "x.svg"], ["export", "--format", "eap-ig", "-o", "x.json"]])
def test_render_and_export_read_results_with_a_limit(tmp_path, command):
    """A results file that is a link to /dev/zero is refused at once, not read forever."""
    (tmp_path / "results.json").symlink_to("/dev/zero")
    circ = os.path.join(os.path.dirname(sys.executable), "circ")
    done = subprocess.run([circ, command[0], "results.json", *command[1:]],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "circ: results.json: cannot read (not a regular file)"
    assert not (tmp_path / command[-1]).exists()
