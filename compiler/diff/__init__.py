"""Semantic diffs of specs and of results: an edit script, renames, formats, the git diff driver."""
