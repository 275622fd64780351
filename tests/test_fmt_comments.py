"""`circ fmt` gives each comment a place by bisection (fmt._attach); here a scan of
every statement, comment by comment, gives the places it must find, on the specs,
fixtures and documentation blocks with comments added at random places."""
import random

from circ.compiler.diagnostics import CircError
from circ.compiler.syntax.fmt import _attach
from circ.compiler.syntax.parser import parse_source
from test_table_parser import _corpus


def scanned_places(items, comments):
    """(kind, item index) of each comment: inside an item, at the end of an item's
    line, before the next item, or after every item."""
    places = []
    for comment in comments:
        position = (comment.line, comment.col)
        inside = [i for i, it in enumerate(items)
                  if (it.span.line, it.span.col) <= position < (it.span.end_line, it.span.end_col)]
        ending = [i for i, it in enumerate(items)
                  if it.span.end_line == comment.line and it.span.end_col <= comment.col]
        following = [i for i, it in enumerate(items) if (it.span.line, it.span.col) > position]
        if inside:
            places.append(("inner", inside[0]))
        elif ending:
            places.append(("trailing", ending[-1]))
        elif following:
            places.append(("leading", following[0]))
        else:
            places.append(("footer", None))
    return places


def attached_places(items, comments):
    notes, footer = _attach(items, comments)
    where = {}
    for index, note in enumerate(notes):
        for comment in note.inner:
            where[id(comment)] = ("inner", index)
        for comment in note.leading:
            where[id(comment)] = ("leading", index)
        if note.trailing is not None:
            where[id(note.trailing)] = ("trailing", index)
    for comment in footer:
        where[id(comment)] = ("footer", None)
    return [where.get(id(comment)) for comment in comments]


def with_random_comments(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 6)):
        k = rng.randrange(len(lines))
        cut = rng.randrange(len(lines[k]) + 1)
        gap = rng.choice(["", " ", "  "])  # a comment may touch the text before it
        if rng.random() < 0.5:
            lines[k] += gap + "# end"
        else:
            lines[k] = lines[k][:cut] + gap + "# mid\n" + lines[k][cut:]
    return "\n".join(lines)


def test_bisection_finds_the_place_a_scan_finds():
    rng = random.Random(15)
    checked = 0
    for text in _corpus():
        for _ in range(4):
            try:
                parsed = parse_source(with_random_comments(text, rng), "t.circ")
            except CircError:
                continue
            items, comments = list(parsed.statements), list(parsed.comments)
            assert attached_places(items, comments) == scanned_places(items, comments)
            for statement in items:  # categories place their comments among entries
                entries = list(getattr(statement, "entries", ()))
                inner = [c for c in comments
                         if (statement.span.line, statement.span.col) <= (c.line, c.col)
                         < (statement.span.end_line, statement.span.end_col)]
                assert attached_places(entries, inner) == scanned_places(entries, inner)
            checked += len(comments)
    assert checked > 500
