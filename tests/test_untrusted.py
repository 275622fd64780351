"""Untrusted files: every way a spec, a dataset or a model folder could run code,
reach the network or write outside the output folder, tried and shown closed. Each
attempt would create a marker file if it succeeded; the tests assert it does not."""
import io
import json
import pickle
import shutil
import socket

import pytest
from circ.compiler import ir
from circ.compiler.api import compile_file, compile_source
from circ.compiler.diagnostics import CircError
from circ.runtime.models import loading as models
from click.testing import CliRunner
from conftest import mcq_examples

from circ.cli.run import run_spec

DIAGNOSTIC = r"^.+:\d+:\d+: error\[E\d{3}\]: "
RECORD = json.dumps({"prompt": mcq_examples(1)[0].prompt, "answer": " A", "wrong": [" B"]})


def run(spec_path, out, *, trust_remote_code=False):
    err = io.StringIO()
    code = run_spec(str(spec_path), str(out), model=None, device=None, batch_size=4, seed=0,
                    trust_remote_code=trust_remote_code, progress=False, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def code_that_touches(marker):
    return f"import os\nopen({str(marker)!r}, 'w').write('ran')\nos.system('touch {marker}')\n"


# --------------------------------------------------------------------------- specs
ESCAPES = [
    'data clean = __import__("os").system("touch {m}")',
    "data clean = `touch {m}`",
    "!touch {m}",
    "import os",
    'exec("open(\'{m}\', \'w\')")',
    'data clean = eval("open(\'{m}\', \'w\')")',
    'data clean = os.system("touch {m}")',
    "data clean = mcq(n=$(touch {m}))",
    'metric ld = logit_diff at last\nanalysis a = attribute(heads, on=clean, metric=lambda: open("{m}"))',
    "data clean = mcq(n=1); open('{m}', 'w')",
]


@pytest.mark.parametrize("line", ESCAPES)
def test_a_spec_has_no_syntax_that_runs_code(tmp_path, line):
    marker = tmp_path / "marker"
    with pytest.raises(CircError) as caught:
        compile_source("data clean = mcq(n=4)\n" + line.format(m=marker) + "\n", str(tmp_path / "s.circ"))
    rendered = caught.value.render()
    assert rendered.splitlines()[0].startswith(str(tmp_path / "s.circ"))
    assert all(d.code.startswith("E") for d in caught.value.diagnostics)
    assert not marker.exists()


def test_shell_variables_in_paths_are_not_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRC_SECRET_DIR", str(tmp_path))
    (tmp_path / "d.jsonl").write_text(RECORD + "\n")
    with pytest.raises(CircError) as caught:
        compile_source('data clean = jsonl("${CIRC_SECRET_DIR}/d.jsonl")\n', str(tmp_path / "s.circ"))
    assert [d.code for d in caught.value.diagnostics] == ["E502"]
    assert "${CIRC_SECRET_DIR}/d.jsonl" in caught.value.render()


def test_including_a_python_file_parses_it_as_circ_and_never_runs_it(tmp_path):
    marker = tmp_path / "marker"
    (tmp_path / "evil.py").write_text(code_that_touches(marker))
    (tmp_path / "s.circ").write_text('include "evil.py"\ndata clean = mcq(n=4)\n')
    with pytest.raises(CircError) as caught:
        compile_file(tmp_path / "s.circ")
    assert caught.value.diagnostics[0].span.path == str(tmp_path / "evil.py")
    assert caught.value.diagnostics[0].code.startswith("E1")  # a syntax error in evil.py
    assert not marker.exists()


@pytest.mark.parametrize("target", ["https://example.com/data.jsonl", "/dev/zero", "/dev/stdin"])
def test_data_and_includes_are_local_regular_files(tmp_path, target):
    # include_outside: /dev/zero lies outside the spec's folder, refused (E112) without it
    for text, code in ((f'include "{target}"\n', "E501"), (f'data clean = jsonl("{target}")\n', "E502")):
        with pytest.raises(CircError) as caught:
            compile_source(text, str(tmp_path / "s.circ"), include_outside=True)
        assert [d.code for d in caught.value.diagnostics] == [code]


# --------------------------------------------------------------------------- paths
@pytest.fixture
def nested(tmp_path):
    """A spec two folders down, and files above it."""
    spec_dir = tmp_path / "a" / "b"
    spec_dir.mkdir(parents=True)
    return spec_dir


def test_paths_are_resolved_from_the_spec_folder_not_the_working_folder(nested, tmp_path, monkeypatch):
    (nested / "d.jsonl").write_text(RECORD + "\n")
    (tmp_path / "up.jsonl").write_text(RECORD + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "d.jsonl").write_text("decoy\n")
    monkeypatch.chdir(elsewhere)
    spec = compile_source('data here = jsonl("d.jsonl")\ndata up = jsonl("../../up.jsonl")\n',
                          str(nested / "s.circ"))
    assert spec.dataset("here").param("path") == str(nested / "d.jsonl")
    assert spec.dataset("up").param("path") == str(tmp_path / "up.jsonl")


def test_a_path_outside_the_spec_folder_is_only_read_as_data(nested, tmp_path, tiny_dir):
    """"../../etc/passwd" is allowed, and is just a file that does not parse as JSONL;
    its text is not echoed back."""
    marker = tmp_path / "marker"
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0:SECRET-VALUE:/root:/bin/sh\n" + code_that_touches(marker))
    (nested / "s.circ").write_text(f'model hf("{tiny_dir}")\ndata clean = jsonl("../../etc/passwd")\n'
                                   'metric ld = logit_diff at last\n'
                                   'analysis a = attribute(heads, on=clean, metric=ld)\n')
    code, stderr = run(nested / "s.circ", tmp_path / "out")
    assert code == 2  # a broken dataset
    assert f"{tmp_path / 'etc' / 'passwd'}:1: not valid JSON" in stderr
    assert "SECRET-VALUE" not in stderr and "Traceback" not in stderr
    assert not marker.exists()


@pytest.mark.parametrize("target", ["../escape.dot", "/tmp/escape-circ-test.dot", "sub/../../escape.svg"])
def test_diagrams_are_never_written_outside_the_output_folder(tmp_path, tiny_dir, target):
    (tmp_path / "s.circ").write_text(f'model hf("{tiny_dir}")\ncircuit c = [L0.H1]\nrender c to "{target}"\n')
    code, stderr = run(tmp_path / "s.circ", tmp_path / "out")
    assert code == 1 and "s.circ:3:13: error[E510]: cannot render to" in stderr
    assert not (tmp_path / "escape.dot").exists() and not (tmp_path / "escape.svg").exists()
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- models
def model_with_remote_code(tiny_dir, folder, model_type):
    model = folder / "model"
    shutil.copytree(tiny_dir, model)
    marker = folder / "marker"
    (model / "evil.py").write_text(code_that_touches(marker) +
                                   "from transformers import GPT2Config as EvilConfig\n"
                                   "from transformers import GPT2LMHeadModel as EvilModel\n")
    config = json.loads((model / "config.json").read_text())
    config.update(model_type=model_type, auto_map={"AutoConfig": "evil.EvilConfig",
                                                   "AutoModelForCausalLM": "evil.EvilModel"})
    (model / "config.json").write_text(json.dumps(config))
    return model, marker


def test_custom_model_code_does_not_run_without_the_flag(tmp_path, tiny_dir):
    model, marker = model_with_remote_code(tiny_dir, tmp_path, "circ_custom")
    with pytest.raises(models.ModelError) as caught:
        models.load_model(ir.Model(source="hf", location=str(model)), spec_dir=tmp_path)
    assert "custom code" in caught.value.message
    assert not marker.exists()


def test_custom_code_beside_a_known_architecture_is_ignored(tmp_path, tiny_dir):
    model, marker = model_with_remote_code(tiny_dir, tmp_path, "gpt2")
    loaded = models.load_model(ir.Model(source="hf", location=str(model)), spec_dir=tmp_path)
    assert loaded.shape.n_heads == 4
    assert not marker.exists()


def test_custom_tokenizer_code_does_not_run_without_the_flag(tmp_path, tiny_dir):
    marker = tmp_path / "marker"
    tokenizer = tmp_path / "tok"
    tokenizer.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_dir / name, tokenizer / name)
    (tokenizer / "evil.py").write_text(code_that_touches(marker) +
                                       "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")
    config = json.loads((tokenizer / "tokenizer_config.json").read_text())
    config.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]})
    (tokenizer / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(models.ModelError) as caught:
        models.load_model(ir.Model(source="hf", location=str(tiny_dir), tokenizer=str(tokenizer)), spec_dir=tmp_path)
    assert "custom code" in caught.value.message
    assert not marker.exists()


@pytest.mark.parametrize("argv, expected", [([], False), (["--trust-remote-code"], True)])
def test_only_the_flag_lets_remote_code_run(tmp_path, tiny_dir, monkeypatch, argv, expected):
    """The CLI flag is the one way trust_remote_code reaches the model loader."""
    from circ.cli.main import main

    seen = []

    def refuse(model, *, spec_dir, trust_remote_code=False, **_):
        seen.append(trust_remote_code)
        raise models.ModelError("stopped here")

    monkeypatch.setattr(models, "load_model", refuse)
    (tmp_path / "s.circ").write_text(f'model hf("{tiny_dir}")\n')
    result = CliRunner().invoke(main, ["run", str(tmp_path / "s.circ"), "--out", str(tmp_path / "out"), *argv])
    assert result.exit_code == 2  # the model could not load
    assert seen == [expected]


class _Payload:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_weights_are_never_unpickled(tmp_path, tiny_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_dir, model)
    (model / "model.safetensors").unlink()
    marker = tmp_path / "marker"
    with open(model / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"transformer.wte.weight": _Payload(marker)}, handle, protocol=2)
    (tmp_path / "s.circ").write_text(f'model hf("{model}")\n')
    code, stderr = run(tmp_path / "s.circ", tmp_path / "out")
    assert code == 2 and "cannot load the model" in stderr and "UnpicklingError" in stderr
    assert "Traceback" not in stderr and not marker.exists()


def test_a_pickle_beside_safetensors_is_not_read(tmp_path, tiny_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_dir, model)
    marker = tmp_path / "marker"
    with open(model / "pytorch_model.bin", "wb") as handle:
        pickle.dump(_Payload(marker), handle, protocol=2)
    models.load_model(ir.Model(source="hf", location=str(model)), spec_dir=tmp_path)
    assert not marker.exists()


def test_a_model_name_missing_from_the_cache_never_reaches_the_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    attempts = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: attempts.append(address))
    with pytest.raises(CircError) as caught:
        compile_source('model cache("acme/not-here")\n', str(tmp_path / "s.circ"))
    assert [d.code for d in caught.value.diagnostics] == ["E506"]
    with pytest.raises(models.ModelError) as error:
        models.load_model(ir.Model(source="cache", location="acme/not-here"), spec_dir=tmp_path)
    assert "not in the local Hugging Face cache" in error.value.message
    assert attempts == []
