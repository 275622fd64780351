"""Nothing circ reads is unpickled. Lark's parser cache is a pickle with a predictable
name in the temporary folder; a planted one would run code in every circ command.
The tests plant one where Lark would read it and show circ never loads it, and
that no circ module can unpickle at all."""
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What Lark writes with `cache=True`: the parser options circ used to pass.
BUILD_CACHED_PARSER = """
from importlib import resources
from lark import Lark
grammar = resources.files("circ.grammar").joinpath("circ.lark").read_text("utf-8")
Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True,
     lexer_callbacks={"COMMENT": lambda token: token}, cache=True)
"""


class _Payload:
    """Unpickling this object creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _python(code_or_args, temp_dir, *, cwd=ROOT):
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    env = {**os.environ, "TMPDIR": str(temp_dir)}
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def planted(tmp_path):
    """A temporary folder holding Lark's cache files for circ's grammar, each
    replaced by a pickle whose loading creates `marker` (header kept, so Lark
    would accept it)."""
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    assert _python(BUILD_CACHED_PARSER, temp_dir).returncode == 0
    caches = sorted(temp_dir.glob(".lark_cache*"))
    assert caches, "Lark wrote no cache file to plant"
    marker = tmp_path / "marker"
    for cache in caches:
        header = cache.read_bytes().split(b"\n", 1)[0] + b"\n"
        cache.write_bytes(header + pickle.dumps(_Payload(marker), protocol=2))
    return temp_dir, marker


def test_the_planted_cache_would_run_code_in_a_cached_parser(planted):
    """The plant is real: a parser built with Lark's cache loads it."""
    temp_dir, marker = planted
    _python(BUILD_CACHED_PARSER, temp_dir)
    assert marker.exists()


@pytest.mark.parametrize("command", [["check"], ["fmt", "--check"], ["plan"]])
def test_no_command_loads_a_planted_parser_cache(planted, tmp_path, command):
    temp_dir, marker = planted
    spec = tmp_path / "s.circ"
    spec.write_text('spec "s"\nmodel demo\ndata clean = mcq(n=4)\n')
    before = sorted(p.name for p in temp_dir.iterdir())
    done = _python(["-c", "from circ.cli.main import main; main()", *command, str(spec)], temp_dir)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    assert sorted(p.name for p in temp_dir.iterdir()) == before  # nor writes a cache


def test_no_circ_module_can_unpickle():
    """No pickle, joblib, np.load(allow_pickle) or a torch.load that may unpickle
    objects anywhere in circ's code."""
    pattern = re.compile(r"\bimport pickle\b|\bpickle\.|\bjoblib\b|\bshelve\b|\bmarshal\.load|"
                         r"allow_pickle\s*=\s*True|\bcache\s*=\s*True|torch\.load\((?![^)]*weights_only=True)")
    offenders = []
    for folder in ("compiler", "runtime", "circ", "grammar"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
