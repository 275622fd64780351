"""Bad datasets and bad models stop `circ run` with a located error, exit 2, before
any forward pass, and without writing results.json; never with a traceback."""
import io
import json
import shutil

import pytest
from circ.compiler.api import compile_source
from circ.compiler.diagnostics import CircError
from circ.runtime.models import loading as models
from conftest import VOCAB, load_tiny, mcq_examples

from circ.cli.run import run_spec

GOOD = [{"prompt": e.prompt, "answer": e.answer, "wrong": list(e.wrong), "corrupt": e.corrupt,
         "marks": {k: list(v) for k, v in e.marks}} for e in mcq_examples(4, seed=9)]
LINE = json.dumps(GOOD[0])


def spec_text(model_dir, data="jsonl(\"data.jsonl\")", nodes="heads + mlps"):
    # The dataset under test is `z_bad`, the last in name order: a good dataset is
    # prepared first, and its forward pass must still not have run.
    return (f'model hf("{model_dir}")\n'
            f'data a_good = jsonl("good.jsonl")\n'
            f'data z_bad = {data}\n'
            f'metric ld = logit_diff(answer, wrong) at last\n'
            f'analysis first = attribute({nodes}, on=a_good, metric=ld)\n'
            f'analysis second = attribute(heads, on=z_bad, metric=ld)\n')


@pytest.fixture
def forwards(monkeypatch):
    """Counts forward passes of every TransformerBridge."""
    from transformer_lens.model_bridge import TransformerBridge

    calls = []
    original = TransformerBridge.forward

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TransformerBridge, "forward", counted)
    return calls


def prepare(folder, data=LINE + "\n"):
    (folder / "good.jsonl").write_text("\n".join(json.dumps(r) for r in GOOD) + "\n")
    (folder / "data.jsonl").write_text(data)


def run(folder, text):
    spec = folder / "spec.circ"
    spec.write_text(text)
    err = io.StringIO()
    code = run_spec(str(spec), str(folder / "out"), model=None, device=None, batch_size=4, seed=0,
                    trust_remote_code=False, progress=False, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def assert_refused(folder, code, stderr, forwards, spec_line):
    assert code == 2, stderr  # a broken dataset or model: the run could not finish
    assert stderr.startswith(f"{folder / 'spec.circ'}:{spec_line}:1: error[E600]: "), stderr
    assert "Traceback" not in stderr
    assert not (folder / "out" / "results.json").exists()
    assert forwards == []


def record(**changes):
    row = dict(GOOD[1], **changes)
    return json.dumps({k: v for k, v in row.items() if v is not None})


# --------------------------------------------------------------------------- datasets
JSONL_CASES = {
    "missing_field": (LINE + "\n" + record(answer=None) + "\n", 2, 'missing field "answer"'),
    "answer_not_in_vocabulary": (record(wrong=[" Zebra"]) + "\n", 1, "not in the model's vocabulary"),
    "prompt_longer_than_context": (LINE + "\n" + record(prompt="cat " * 30, corrupt=None, marks=None) + "\n",
                                   2, "longer than the model's context of 24"),
    "corrupt_of_other_length": (record(corrupt="cat dog") + "\n", 1, "they must match"),
    "mark_not_in_prompt": (record(marks={"x": "zebra"}) + "\n", 1, 'mark "x": "zebra" does not occur'),
    "broken_json": (LINE + "\n" + '{"prompt": "cat",' + "\n", 2, "not valid JSON"),
    "not_an_object": ('["cat"]\n', 1, "each line must be a JSON object"),
    "wrong_type": (record(answer=3.5) + "\n", 1, '"answer" must be a non-empty string'),
    "nested_too_deeply": ('{"prompt": ' + "[" * 100000 + "]" * 100000 + "}\n", 1, "nested too deeply"),
    "enormous_integer": ('{"prompt": ' + "7" * 5000 + "}\n", 1, "not valid JSON"),
    "empty_file": ("", None, "the file holds no examples"),
    "only_blank_lines": ("\n  \n\n", None, "the file holds no examples"),
}


@pytest.mark.parametrize("case", sorted(JSONL_CASES))
def test_bad_jsonl_is_refused_naming_file_and_line(tmp_path, tiny_dir, forwards, case):
    content, line, message = JSONL_CASES[case]
    prepare(tmp_path, content)
    code, stderr = run(tmp_path, spec_text(tiny_dir))
    assert_refused(tmp_path, code, stderr, forwards, spec_line=3)
    where = f"{tmp_path / 'data.jsonl'}:{line}: " if line else f"{tmp_path / 'data.jsonl'}: "
    assert where + "" in stderr and message in stderr, stderr
    assert 'data z_bad = jsonl("data.jsonl")' in stderr  # the spec line, shown under the message


def test_an_answer_of_two_tokens_is_refused_where_a_metric_reads_one_token(tmp_path, tiny_dir):
    """Answers of several tokens are data answer_logprob reads; logit_diff refuses them
    at the analysis that uses it, naming the file's line and answer_logprob."""
    prepare(tmp_path, LINE + "\n" + LINE + "\n" + record(answer=" A B") + "\n")
    code, stderr = run(tmp_path, spec_text(tiny_dir))
    assert code == 2 and "Traceback" not in stderr
    assert stderr.startswith(f"{tmp_path / 'spec.circ'}:6:1: error[E600]: "), stderr
    assert f"line 3 of {tmp_path / 'data.jsonl'}" in stderr and "answer ' A B' is 2 tokens" in stderr
    assert "answer_logprob(answer)" in stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_non_utf8_dataset_is_refused(tmp_path, tiny_dir, forwards):
    prepare(tmp_path)
    (tmp_path / "data.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    code, stderr = run(tmp_path, spec_text(tiny_dir))
    assert_refused(tmp_path, code, stderr, forwards, spec_line=3)
    assert "data.jsonl: the file is not UTF-8 text" in stderr


AUTOCIRCUIT_CASES = {
    "no_prompts_list": ('{"prompts": 5}', 1, 'expected an object with a "prompts" list'),
    "two_answers": ('{"prompts": [\n {"clean": "cat", "corrupt": "dog", "answers": [" A", " B"], '
                    '"wrong_answers": [" C"]}\n]}', 2, '"answers" must hold exactly one answer, not 2'),
    "missing_clean": ('{"prompts": [\n {"answers": [" A"], "wrong_answers": [" B"]}\n]}', 2,
                      'missing field "clean"'),
    "broken": ('{"prompts": [\n {"clean": }\n]}', 2, "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(AUTOCIRCUIT_CASES))
def test_bad_autocircuit_file_is_refused(tmp_path, tiny_dir, forwards, case):
    content, line, message = AUTOCIRCUIT_CASES[case]
    prepare(tmp_path)
    (tmp_path / "ac.json").write_text(content)
    code, stderr = run(tmp_path, spec_text(tiny_dir, data='autocircuit("ac.json")'))
    assert_refused(tmp_path, code, stderr, forwards, spec_line=3)
    assert f"{tmp_path / 'ac.json'}:{line}: {message}" in stderr, stderr


def test_missing_data_file_is_a_check_error(tmp_path, tiny_dir):
    prepare(tmp_path)
    (tmp_path / "data.jsonl").unlink()
    with pytest.raises(CircError) as caught:
        compile_source(spec_text(tiny_dir), str(tmp_path / "spec.circ"))
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("E502", 3)]


# --------------------------------------------------------------------------- models
def model_copy(tiny_dir, folder):
    copy = folder / "model"
    shutil.copytree(tiny_dir, copy)
    return copy


@pytest.mark.parametrize("node, code", [("L2.H0", "E401"), ("L1.H4", "E402"), ("L9.MLP", "E401")])
def test_out_of_range_node_is_a_check_error_when_the_config_is_readable(tmp_path, tiny_dir, forwards, node, code):
    prepare(tmp_path)
    text = spec_text(tiny_dir, nodes=f"heads + {node}")
    with pytest.raises(CircError) as caught:
        compile_source(text, str(tmp_path / "spec.circ"))
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [(code, 5)]
    exit_code, stderr = run(tmp_path, text)
    assert exit_code == 2 and "spec.circ:5:" in stderr and f"error[{code}]" in stderr
    assert forwards == [] and "Traceback" not in stderr


def test_out_of_range_node_is_caught_once_a_shapeless_model_loads(tmp_path, tiny, forwards, monkeypatch):
    """A GGUF model's shape is known only once loaded: the run checks it before any forward pass."""
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    prepare(tmp_path)
    text = spec_text("x", nodes="heads + L1.H7").replace('hf("x")', 'gguf("m.gguf")')
    compile_source(text, str(tmp_path / "spec.circ"))  # no shape yet: nothing to check against
    monkeypatch.setattr(models, "_boot_gguf", lambda *args: (tiny.bridge, "m.gguf"))
    code, stderr = run(tmp_path, text)
    assert code == 2 and "spec.circ:5:" in stderr and "error[E402]" in stderr, stderr
    assert forwards == [] and "Traceback" not in stderr
    assert not (tmp_path / "out" / "results.json").exists()


def damage_weights(folder):
    (folder / "model.safetensors").unlink()


def corrupt_weights(folder):
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)


def truncate_weights(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def drop_tokenizer(folder):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()


def bigger_tokenizer(folder):
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as token_models
    from transformers import PreTrainedTokenizerFast

    words = VOCAB + [f"extra{i}" for i in range(10)]
    core = Tokenizer(token_models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<bos>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(folder)


MODEL_DAMAGE = {
    "missing_weights": (damage_weights, "has no weights"),
    "corrupt_weights": (corrupt_weights, "cannot load the model"),
    "truncated_weights": (truncate_weights, "cannot load the model"),
    "missing_tokenizer": (drop_tokenizer, "has no tokenizer files"),
    "tokenizer_of_another_model": (bigger_tokenizer, "the tokenizer does not match the model"),
}


@pytest.mark.parametrize("case", sorted(MODEL_DAMAGE))
def test_damaged_model_is_refused(tmp_path, tiny_dir, forwards, case):
    damage, message = MODEL_DAMAGE[case]
    folder = model_copy(tiny_dir, tmp_path)
    damage(folder)
    prepare(tmp_path)
    code, stderr = run(tmp_path, spec_text(folder))
    assert_refused(tmp_path, code, stderr, forwards, spec_line=1)
    assert message in stderr and len(stderr.splitlines()[0]) < 400, stderr


def test_tokenizer_mismatch_names_both_sizes(tmp_path, tiny_dir):
    folder = model_copy(tiny_dir, tmp_path)
    bigger_tokenizer(folder)
    with pytest.raises(models.ModelError) as caught:
        load_tiny(folder)
    assert f"it has {len(VOCAB) + 10} tokens" in caught.value.message
    assert f"vocabulary has {len(VOCAB)} entries" in caught.value.message


@pytest.mark.parametrize("config", ["", "{not json", "[1, 2]", '{"model_type": "gpt2"}'])
def test_unreadable_config_is_a_check_error(tmp_path, tiny_dir, config):
    folder = model_copy(tiny_dir, tmp_path)
    (folder / "config.json").write_text(config)
    prepare(tmp_path)
    with pytest.raises(CircError) as caught:
        compile_source(spec_text(folder), str(tmp_path / "spec.circ"))
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("E506", 1)]
    assert "Traceback" not in caught.value.render()


def test_tiny_model_still_runs_after_these_checks(tmp_path, tiny_dir, forwards):
    """The checks above refuse bad inputs only: the same spec on good inputs runs."""
    prepare(tmp_path)
    code, stderr = run(tmp_path, spec_text(tiny_dir))
    assert code == 0, stderr
    assert len(forwards) > 0 and (tmp_path / "out" / "results.json").is_file()
