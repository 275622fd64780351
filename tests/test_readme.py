"""The README's spec, and the discovery lines it says to add to it, check clean."""
import re
from pathlib import Path

from circ.compiler.api import compile_source

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_readme_spec_and_its_discovery_lines_check():
    spec, discovery = [body for language, body in code_blocks(README) if not language][:2]
    assert spec.startswith('spec "mcq-correct-letter"') and "discover(e" in discovery
    checked = compile_source(spec + discovery, "README.circ")
    assert checked.circuit("found").nodes.grow.target == 0.9
    assert checked.analysis("e").option("method") == "eap_ig" and checked.analysis("fc").kind == "curve"
