"""The named positions a dataset's prompts have, known before anything runs.

Generators and derivations declare theirs (`positions` in signatures.py). A JSONL
file's are the `marks` names that every one of its first lines gives: at most
FIRST_LINES lines within the first READ_LIMIT bytes are read, so checking stays
cheap on any file; a later line that lacks a mark is reported when the run reads
the whole file. Names a spec cannot write (not identifiers) are left out, so a
diagnostic never shows them. An auto-circuit file names no positions. None means
"unknown" (a file that cannot be read or parsed here): the run reports what is
wrong with it.
"""
from __future__ import annotations

import json
import re

from circ.compiler import ir
from circ.compiler.check.signatures import DERIVATIONS, GENERATORS

FIRST_LINES = 16
READ_LIMIT = 1 << 20
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a spec's NAME token: nothing else can be read


def dataset_positions(dataset: ir.Dataset) -> frozenset[str] | None:
    """The names every prompt of `dataset` marks, or None when they cannot be known."""
    if dataset.kind == "jsonl":
        return jsonl_positions(dataset.param("path"))
    signature = GENERATORS.get(dataset.kind) or DERIVATIONS.get(dataset.kind)
    return frozenset(signature.positions) if signature is not None else None


def jsonl_positions(path: str) -> frozenset[str] | None:
    """The `marks` names common to the first lines of a JSONL file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(READ_LIMIT)
    except OSError:
        return None
    lines = head.split(b"\n")
    if len(head) == READ_LIMIT:
        lines = lines[:-1]  # the last line may be cut off
    common = None
    records = [line for line in lines if line.strip()][:FIRST_LINES]
    for raw in records:
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return common
        marks = record.get("marks") if isinstance(record, dict) else None
        names = frozenset(n for n in marks if _NAME.fullmatch(n)) if isinstance(marks, dict) else frozenset()
        common = names if common is None else common & names
    return common
