"""Fuzzing the checker: specs generated from a strategy that mirrors the grammar,
valid specs mutated token by token, random and non-UTF-8 bytes, very long lines,
deep nesting and empty files. Every input ends in a Spec or in diagnostics of the
form `path:line:col: error[CODE]: message`, within two seconds, never in another
exception, and every printed line is one line of printable text whatever the input
holds (line separators, terminal escapes, bidirectional characters); a generated or
mutated spec that checks clean formats to a spec that compiles to the same IR and
formats to itself. `circ check` on pathological files exits 0 or 1 without a traceback.

(tests/test_check.py already fuzzes token soup and small edits of the case study.)
"""
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from circ.compiler import ir
from circ.compiler.api import compile_file, compile_source
from circ.compiler.diagnostics import CODES, CircError
from circ.compiler.syntax.fmt import format_source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
VALID = sorted((ROOT / "specs").glob("*.circ")) + sorted((ROOT / "tests" / "fixtures" / "valid").glob("*.circ"))
SOURCES = [(path, path.read_text(encoding="utf-8")) for path in VALID]
FUZZ = settings(max_examples=300, derandomize=True, deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
HEADLINE = re.compile(r"^(?P<path>.+):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>E\d{3})\]: \S")


def assert_spec_or_diagnostics(path: str, compile_it):
    """Compile; on failure every diagnostic is well formed and points into a file."""
    try:
        spec = compile_it()
    except CircError as error:
        assert error.diagnostics
        rendered = error.render()
        assert HEADLINE.match(rendered), rendered[:300]
        assert all(line.replace("\t", " ").isprintable() for line in rendered.split("\n")), rendered[:300]
        for diagnostic in error.diagnostics:
            headline = diagnostic.format(error.sources.get(diagnostic.span.path)).splitlines()[0]
            match = HEADLINE.match(headline)
            assert match and match["code"] in CODES, headline[:300]
            assert diagnostic.span.line >= 1 and diagnostic.span.col >= 1
        return None
    assert isinstance(spec, ir.Spec) and spec.path == path
    return spec


def assert_checks_and_formats(path: str, text: str):
    """As above; when `text` checks clean, `circ fmt` keeps its meaning and is stable."""
    spec = assert_spec_or_diagnostics(path, lambda: compile_source(text, path))
    if spec is not None:
        formatted = format_source(text, path)
        assert compile_source(formatted, path) == spec, formatted
        assert format_source(formatted, path) == formatted
    return spec


# --------------------------------------------------------------------------- generated specs
NAMES = ["clean", "moved", "ld", "acc", "dla", "patched", "attn", "output", "lowrank", "x", "heads",
         "mlps", "resid", "embed", "EMBED", "corrupt", "zero", "effect", "labels", "answer_label", "last",
         "all", "direct", "total", "random_letters", "numbers", "q", "k", "v", "full", "true", "false",
         "demo", "value", "recovered", "rank"]
FUNCS = ["mcq", "jsonl", "induction", "autocircuit", "logit_diff", "prob", "logprob", "accuracy", "kl",
         "loss", "normalized", "attribute", "patch", "path_patch", "attention", "faithfulness", "subspace",
         "top", "best", "mean", "resample", "demo", "hf", "cache", "gguf", "recovered", "move_answer",
         "shuffle_answers", "relabel", "nope"]
KEYWORDS = ["n", "labels", "seed", "on", "metric", "source", "target", "effect", "query", "parts", "ranks",
            "fit", "eval", "ablate", "at", "method", "verify", "position", "receivers", "dtype", "device",
            "compat", "tokenizer", "options", "length", "path", "answer", "wrong"]
NODES = ["L0.H1", "L1.H3", "L0.MLP", "L1.*", "L9.H0", "L0.H9", "L1.H2.q", "L0.RESID", "L1.H0.x", "L0.Foo"]
STRINGS = ['"ABCD"', '"1234"', '""', '"x.svg"', '"out/c.dot"', '"data/mcq_prompts.jsonl"', '"shared.circ"',
           '"missing.circ"', '"a\\nb"', '"\\q"', '"ünïcödé"', '"a\\u0000b"', '"\\ud800"', '"\\u202egvs.svg"',
           '"\\ud83d\\ude00"', '"\u2028"', '"\x1b[2J"']
PLAIN_STRINGS = [text for text in STRINGS if "\\q" not in text]
COMPARE = ["<", "<=", ">", ">=", "==", "!="]

names = st.sampled_from(NAMES)
defined = st.sampled_from(NAMES[:10])  # names a spec defines; the others are words of the language
numbers = st.one_of(st.integers(-3, 300).map(str), st.sampled_from(["0.5", "1e-2", "2.5E3", "-0.05", "1e999"]))
atoms = st.one_of(names, st.sampled_from(NODES), st.sampled_from(STRINGS), numbers)


def _compound(inner):
    args = st.lists(st.one_of(inner, st.tuples(st.sampled_from(KEYWORDS), inner).map("{0[0]}={0[1]}".format),
                              st.tuples(names, st.sampled_from(COMPARE), inner).map(" ".join)), max_size=4)
    return st.one_of(
        st.tuples(st.sampled_from(FUNCS), args).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(inner, names, args).map(lambda t: f"{t[0]}.{t[1]}({', '.join(t[2])})"),
        st.tuples(inner, names).map("{0[0]}.{0[1]}".format),
        st.tuples(inner, inner).map("{0[0]}[{0[1]}]".format),
        st.tuples(inner, st.sampled_from([" + ", " - "]), inner).map("".join),
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        inner.map("({})".format),
        st.tuples(inner, rules).map("{0[0]} where {0[1]}".format),
    )


terms = st.recursive(st.one_of(names, numbers),
                     lambda inner: st.tuples(st.sampled_from(["abs", "attends", "spread", "nope"]), inner)
                     .map("{0[0]}({0[1]})".format), max_leaves=3)
rules = st.recursive(
    st.tuples(terms, st.sampled_from(COMPARE), terms).map(" ".join),
    lambda inner: st.one_of(st.tuples(inner, st.sampled_from([" and ", " or "]), inner).map("".join),
                            inner.map("not {}".format), inner.map("({})".format)),
    max_leaves=4)
exprs = st.recursive(atoms, _compound, max_leaves=8)
positions = st.one_of(names, numbers)

statements = st.one_of(
    st.sampled_from(STRINGS).map("spec {}".format),
    st.sampled_from(STRINGS).map("include {}".format),
    exprs.map("model {}".format),
    st.tuples(defined, exprs).map("data {0[0]} = {0[1]}".format),
    st.tuples(defined, exprs, st.one_of(st.just(""), positions.map(" at {}".format)))
    .map("metric {0[0]} = {0[1]}{0[2]}".format),
    st.tuples(defined, exprs).map("analysis {0[0]} = {0[1]}".format),
    st.tuples(defined, exprs).map("circuit {0[0]} = {0[1]}".format),
    st.tuples(defined, st.lists(st.tuples(names, rules).map("  {0[0]} = {0[1]}".format), max_size=3))
    .map(lambda t: f"categories {t[0]} {{\n" + "\n".join(t[1]) + "\n}"),
    st.tuples(exprs, st.sampled_from(COMPARE), numbers).map("expect {0[0]} {0[1]} {0[2]}".format),
    st.tuples(names, st.sampled_from(STRINGS)).map("render {0[0]} to {0[1]}".format),
    st.just("# a comment"),
)

# Statements shaped like real ones, so that generated specs get past the parser and
# into name resolution, type checking and range checks.
node_sets = st.recursive(
    st.one_of(st.sampled_from(["heads", "mlps", "EMBED", "resid", "L0.*"]),
              st.lists(st.sampled_from(NODES), min_size=1, max_size=3).map(lambda n: "[" + ", ".join(n) + "]"),
              st.tuples(names, st.integers(0, 12)).map("top({0[0]}, {0[1]})".format),
              st.tuples(names, names).map("best({0[0]}.{0[1]})".format)),
    lambda inner: st.one_of(st.tuples(inner, st.sampled_from([" + ", " - "]), inner).map("".join),
                            st.tuples(inner, rules).map("{0[0]} where {0[1]}".format)),
    max_leaves=3)
options = st.lists(st.tuples(st.sampled_from(KEYWORDS), st.one_of(atoms, node_sets))
                   .map("{0[0]}={0[1]}".format), max_size=3).map(lambda o: "".join(", " + x for x in o))
shaped = st.one_of(
    st.tuples(defined, st.integers(-1, 300), st.sampled_from(PLAIN_STRINGS + ["random_letters", "numbers"]))
    .map('data {0[0]} = mcq(n={0[1]}, labels={0[2]})'.format),
    st.tuples(defined, defined, st.integers(0, 9)).map("data {0[0]} = {0[1]}.move_answer(seed={0[2]})".format),
    st.tuples(defined, st.sampled_from(["logit_diff(answer, wrong)", "accuracy", "prob", "kl", "normalized(ld)"]),
              positions).map("metric {0[0]} = {0[1]} at {0[2]}".format),
    st.tuples(defined, st.sampled_from(["attribute", "patch", "path_patch", "attention", "faithfulness",
                                      "subspace"]), node_sets, defined, defined, options)
    .map("analysis {0[0]} = {0[1]}({0[2]}, on={0[3]}, metric={0[4]}{0[5]})".format),
    st.tuples(defined, node_sets).map("circuit {0[0]} = {0[1]}".format),
    st.tuples(defined, st.sampled_from(["total", "value", "recovered(clean, rank <= 4)", "[L0.H1]", ""]),
              st.sampled_from(COMPARE), numbers).map("expect {0[0]}.{0[1]} {0[2]} {0[3]}".format),
)
HEADER = "model demo\ndata clean = mcq(n=8)\ndata moved = clean.move_answer()\nmetric ld = logit_diff at last\n"
GENERATED_AT = str(ROOT / "tests" / "fixtures" / "valid" / "generated.circ")


@FUZZ
@given(st.booleans(), st.lists(st.one_of(statements, shaped, shaped), max_size=8))
def test_specs_generated_from_the_grammar_check_cleanly(with_header, lines):
    text = (HEADER if with_header else "") + "\n".join(lines) + "\n"
    assert_checks_and_formats(GENERATED_AT, text)


# --------------------------------------------------------------------------- mutated specs
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[A-Za-z_][A-Za-z0-9_.*]*|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\s+|.')
EXTRA = ["(", ")", "[", "]", "{", "}", "=", ",", ".", '"', "where", "and", "not", "L0.H1", "top(", "#",
         "\n", "\\", "\t", "\x00", "\u00a0", "\u202e", "\ufeff", "🙂", "\r", "\f", "\u2028", "\x85",
         "\x1b[2J", "`", "\\u202e", "\\ud800"]
edits = st.lists(st.tuples(st.sampled_from(["delete", "duplicate", "swap", "insert", "replace"]),
                           st.integers(0, 10**6), st.integers(0, 10**6),
                           st.one_of(st.sampled_from(EXTRA), st.text(max_size=3))), min_size=1, max_size=6)


def mutate(text: str, operations) -> str:
    tokens = TOKEN.findall(text)
    for kind, first, second, extra in operations:
        if not tokens:
            tokens = [extra]
            continue
        i, j = first % len(tokens), second % len(tokens)
        if kind == "delete":
            del tokens[i]
        elif kind == "duplicate":
            tokens.insert(i, tokens[i])
        elif kind == "swap":
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == "insert":
            tokens.insert(i, extra)
        else:
            tokens[i] = extra
    return "".join(tokens)


@FUZZ
@given(st.sampled_from(SOURCES), edits)
def test_mutated_valid_specs_check_cleanly(source, operations):
    path, text = source
    mutated = mutate(text, operations)
    assert_checks_and_formats(str(path), mutated)


# --------------------------------------------------------------------------- bytes and sizes
@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def write_and_check(folder: Path, name: str, data: bytes):
    path = folder / name
    path.write_bytes(data)
    return assert_spec_or_diagnostics(str(path), lambda: compile_file(path))


@FUZZ
@given(st.sampled_from(SOURCES), st.integers(0, 10**6), st.binary(min_size=1, max_size=40))
def test_random_bytes_inside_a_valid_spec_check_cleanly(scratch, source, at, noise):
    path, text = source
    data = text.encode("utf-8")
    at %= len(data) + 1
    write_and_check(scratch, path.name, data[:at] + noise + data[at:])


@settings(max_examples=100, derandomize=True, deadline=timedelta(seconds=2),
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bytes_check_cleanly(scratch, data):
    write_and_check(scratch, "noise.circ", data)


LONG = {
    "name": lambda n: f"data {'x' * n} = mcq(n=8)\n",
    "string": lambda n: f'spec "{"s" * n}"\n',
    "comment": lambda n: "# " + "c" * n + "\nmodel demo\n",
    "union": lambda n: "circuit c = " + " + ".join(["L0.H1"] * (n // 8)) + "\n",
    "arguments": lambda n: "data clean = mcq(" + ", ".join(["n=8"] * (n // 5)) + ")\n",
    "list": lambda n: "circuit c = [" + ", ".join(["L0.H1"] * (n // 8)) + "]\n",
    "statements": lambda n: " ".join(f"metric m{i} = accuracy at last" for i in range(n // 31)),
    "spaces": lambda n: " " * n,
    "junk": lambda n: "@" * n,
}
NESTED = {
    "parentheses": lambda d: "circuit c = " + "(" * d + "L0.H1" + ")" * d + "\n",
    "lists": lambda d: "circuit c = " + "[" * d + "L0.H1" + "]" * d + "\n",
    "calls": lambda d: "data c = " + "mcq(" * d + ")" * d + "\n",
    "methods": lambda d: "data c = clean" + ".move_answer()" * d + "\n",
    "not": lambda d: "circuit c = dla where " + "not " * d + "effect > 0\n",
    "rule_parentheses": lambda d: "circuit c = dla where " + "(" * d + "effect > 0" + ")" * d + "\n",
    "terms": lambda d: "categories c {\n a = " + "abs(" * d + "dla" + ")" * d + " > 0\n}\n",
    "unclosed": lambda d: "circuit c = " + "(" * d + "\n",
    "unopened": lambda d: "circuit c = L0.H1" + ")" * d + "\n",
}


@settings(FUZZ, max_examples=100)
@given(st.sampled_from(sorted(LONG)), st.integers(1, 20_000))
def test_very_long_lines_check_cleanly(kind, length):
    text = HEADER + LONG[kind](length)
    assert_spec_or_diagnostics(GENERATED_AT, lambda: compile_source(text, GENERATED_AT))


@settings(FUZZ, max_examples=100)
@given(st.sampled_from(sorted(NESTED)), st.integers(1, 1500))
def test_deep_nesting_checks_cleanly(kind, depth):
    text = HEADER + NESTED[kind](depth)
    assert_spec_or_diagnostics(GENERATED_AT, lambda: compile_source(text, GENERATED_AT))


EMPTYISH = {"empty": b"", "newlines": b"\n\n\n", "bom": b"\xef\xbb\xbf", "comment": b"# nothing\n",
            "crlf": b"\r\n\r\n", "nul": b"\x00", "utf16": "model demo\n".encode("utf-16")}


@pytest.mark.parametrize("name", sorted(EMPTYISH))
def test_empty_and_almost_empty_files(scratch, name):
    spec = write_and_check(scratch, f"{name}.circ", EMPTYISH[name])
    if name in ("empty", "newlines", "bom", "comment", "crlf"):
        assert spec is not None and spec.model.source == "demo" and spec.analyses == ()


# --------------------------------------------------------------------------- the command
PATHOLOGICAL = {
    "empty.circ": b"",
    "latin1.circ": "data caf\u00e9 = mcq(n=8)\n".encode("latin-1"),
    "nul.circ": b"model demo\x00\n",
    "long_line.circ": b"data " + b"x" * 1_000_000 + b" = mcq(n=8)\n",
    "deep.circ": b"circuit c = " + b"(" * 100_000 + b"L0.H1" + b")" * 100_000 + b"\n",
    "unclosed.circ": b"circuit c = " + b"[" * 100_000 + b"\n",
    "binary.circ": bytes(range(256)) * 64,
    "cycle.circ": b'include "cycle.circ"\n',
}


def test_circ_check_on_pathological_files_exits_cleanly(scratch):
    circ = Path(sys.executable).with_name("circ")
    paths = []
    for name, data in PATHOLOGICAL.items():
        (scratch / name).write_bytes(data)
        paths.append(str(scratch / name))
    paths.append(str(scratch / "does-not-exist.circ"))
    finished = subprocess.run([str(circ), "check", *paths], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1
    assert "Traceback" not in finished.stderr and "Traceback" not in finished.stdout
    for name in [*PATHOLOGICAL, "does-not-exist.circ"]:
        if name not in ("empty.circ", "long_line.circ"):
            assert re.search(rf"^{re.escape(str(scratch / name))}:\d+:\d+: error\[E\d{{3}}\]: ",
                             finished.stderr, re.MULTILINE), name
    assert f"{scratch / 'empty.circ'}: ok" in finished.stderr
    assert f"{scratch / 'long_line.circ'}: ok" in finished.stderr
    directory = subprocess.run([str(circ), "check", str(scratch)], capture_output=True, text=True, timeout=60)
    assert directory.returncode == 2 and "Traceback" not in directory.stderr


# --------------------------------------------------------------------------- pathological inputs
def test_many_errors_on_one_long_line_take_linear_time():
    def seconds(repeats):
        """The fastest of five tries, so that a busy machine does not decide."""
        times = []
        for _ in range(5):
            started = time.monotonic()
            with pytest.raises(CircError):
                compile_source("model demo " * repeats, "x.circ")
            times.append(time.monotonic() - started)
        return min(times)

    seconds(100)
    assert seconds(2000) < 8 * seconds(500)  # quadratic time would be 16 times


@pytest.mark.parametrize("text", ["data clean = mcq(n=" + "1" * 5000 + ")\n", "circuit c = L" + "9" * 5000 + ".H1\n"])
def test_numbers_too_long_to_convert_are_diagnostics(text):
    assert_spec_or_diagnostics("x.circ", lambda: compile_source(text, "x.circ"))


def test_a_fifo_as_spec_is_refused_quickly(scratch):
    fifo = scratch / "pipe.circ"
    if not fifo.exists():
        os.mkfifo(fifo)
    circ = Path(sys.executable).with_name("circ")
    try:
        finished = subprocess.run([str(circ), "check", str(fifo)], capture_output=True, text=True, timeout=3)
    except subprocess.TimeoutExpired:
        pytest.fail("circ check on a FIFO did not finish")
    assert finished.returncode == 1 and "error[E505]" in finished.stderr
