"""The report as a tool to explore, driven in headless Chromium by playwright: a small
spec runs on the demo model; in its report.html we pick a prompt, a head and a query
and check the weights shown against results.json and against a TransformerLens hook on
the same tokens; hover a token; sort the node table; follow a row's links to the
diagram and a heatmap cell; read the per-prompt view's worst prompts. No console
message is allowed. Screenshots are kept in
tests/artifacts/ (git-ignored)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the `test` extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
ARTIFACTS = Path(__file__).parent / "artifacts"
SPEC = """\
spec "explore"
model demo

data clean = mcq(n=6, labels="ABCD", seed=0)
data moved = clean.move_answer(seed=3)
metric ld = logit_diff(answer, wrong) at last

analysis dla    = attribute(heads + mlps, on=clean, metric=ld)
analysis direct = patch(heads + mlps, source=moved, target=clean, metric=ld, effect=direct)
analysis attn   = attention(heads, on=clean, query=last, explore=4)

circuit output = top(direct, 5)
render output to "circuit.svg"
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(the demo model, results.json as a dict, the path of report.html)."""
    import circ
    from circ.compiler import ir
    from circ.runtime.models.loading import load_model

    folder = tmp_path_factory.mktemp("explore")
    spec = folder / "explore.circ"
    spec.write_text(SPEC)
    loaded = load_model(ir.Model(source="demo"), spec_dir=folder)
    results = circ.run(spec, model=loaded.bridge, progress=False)
    results.save(folder / "out")
    data = json.loads((folder / "out" / "results.json").read_text())
    return loaded, data, folder / "out" / "report.html"


@pytest.fixture(scope="module")
def browser_page(run):
    messages = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (messages.append(f"network: {route.request.url}"), route.abort()))
        page.goto(run[2].resolve().as_uri())
        yield page, messages
        browser.close()


def shown_weights(page) -> list[float]:
    return page.eval_on_selector_all(
        ".explorer .tok[data-weight]", "spans => spans.map(s => Number(s.dataset.weight))")


def hook_row(loaded, tokens: list[str], head: str, query: int) -> list[float]:
    """The head's attention row at `query`, from TransformerLens's hook_pattern."""
    layer, index = (int(part[1:]) for part in head.split("."))
    ids = torch.tensor([loaded.tokenizer.convert_tokens_to_ids(tokens)])
    with torch.no_grad():
        _, cache = loaded.bridge.run_with_cache(ids, names_filter=f"blocks.{layer}.attn.hook_pattern")
    return cache[f"blocks.{layer}.attn.hook_pattern"][0, index, query, :query + 1].tolist()


def test_picking_a_prompt_head_and_query_shows_their_weights(run, browser_page):
    loaded, results, _ = run
    page, messages = browser_page
    explorer = results["analyses"]["attn"]["explorer"]
    assert explorer["prompts"] == 4 and explorer["of"] == 6 and explorer["rows"] == "all"
    first = explorer["examples"][0]
    heads = explorer["heads"]
    prompt_text = results["datasets"]["clean"]["example"]
    assert first["tokens"] == loaded.tokenizer.convert_ids_to_tokens(
        loaded.tokenizer(prompt_text)["input_ids"])  # the page's tokens are the prompt's

    # The default view: prompt 1, the first head, the analysis's query (the last token).
    last = len(first["tokens"]) - 1
    assert page.input_value(".pick-query") == str(first["rows"].index(last))
    before = shown_weights(page)
    assert before == first["patterns"][heads[0]][last]
    assert before == pytest.approx(results["analyses"]["attn"]["patterns"][heads[0]]["weights"], abs=5e-4)

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".explorer").screenshot(path=str(ARTIFACTS / "explorer-default.png"))
    page.select_option(".pick-prompt", "2")
    page.select_option(".pick-head", heads[-1])
    query = 9
    page.select_option(".pick-query", str(explorer["examples"][2]["rows"].index(query)))
    after = shown_weights(page)
    example = explorer["examples"][2]
    assert after != before and len(after) == query + 1
    assert after == example["patterns"][heads[-1]][example["rows"].index(query)]
    assert after == pytest.approx(hook_row(loaded, example["tokens"], heads[-1], query), abs=1e-3)
    assert page.locator(".explorer .tok").count() == len(example["tokens"])
    assert page.locator(".explorer .tok.future").count() == len(example["tokens"]) - query - 1

    key = max(range(query + 1), key=lambda k: after[k])
    page.hover(f".explorer .tok[data-position='{key}']")
    assert page.text_content(".explorer .readout").endswith(f"weight {after[key]}")
    page.click(".explorer .tok[data-position='4']")  # a token clicked becomes the query
    assert shown_weights(page) == example["patterns"][heads[-1]][example["rows"].index(4)]
    page.locator(".explorer").screenshot(path=str(ARTIFACTS / "explorer-picked.png"))
    assert messages == []


def test_node_table_sorts_and_rows_jump_to_diagram_and_heatmap(run, browser_page):
    _, results, _ = run
    page, messages = browser_page
    table = "#nodes-output"
    scores = lambda: page.eval_on_selector_all(  # noqa: E731
        f"{table} tbody tr", "rows => rows.map(r => Number(r.cells[3].dataset.sort))")
    expected = sorted(n["score"] for n in results["circuits"]["output"]["nodes"])
    page.click(f"{table} th:has-text('score')")
    assert scores() == expected
    assert page.get_attribute(f"{table} th:has-text('score')", "aria-sort") == "ascending"
    page.click(f"{table} th:has-text('score')")
    assert scores() == expected[::-1]
    page.click(f"{table} th:has-text('node')")
    ids = page.eval_on_selector_all(f"{table} tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert ids == sorted(ids, key=lambda i: tuple(int(p[1:]) if p[1:].isdigit() else 99 for p in i.split(".")))

    node = ids[0]
    anchor = node.replace(".", "-")
    row = f"#node-output-{anchor}"
    if shutil.which("dot"):
        page.click(f"{row} a:has-text('diagram')")
        assert page.evaluate("location.hash") == f"#diagram-{anchor}"
        assert page.get_attribute(f"#diagram-{anchor}", "class") == "node jumped"
        assert page.text_content(f"#diagram-{anchor} title") == node
        assert page.eval_on_selector(f"#diagram-{anchor} path", "p => getComputedStyle(p).strokeWidth") == "4px"
        page.screenshot(path=str(ARTIFACTS / "diagram-jump.png"))
    page.click(f"{row} a:has-text('heatmap direct')")
    cell = f"#cell-direct-{anchor}"
    assert page.evaluate("location.hash") == f"#cell-direct-{anchor}"
    assert page.get_attribute(cell, "class") == "jumped"
    stroke = page.eval_on_selector(f"{cell} path", "p => getComputedStyle(p).strokeWidth")
    assert stroke == "4px"
    top = page.eval_on_selector(cell, "c => c.getBoundingClientRect().top")
    assert 0 <= top <= 900  # scrolled into view
    page.screenshot(path=str(ARTIFACTS / "heatmap-jump.png"))
    assert page.get_attribute(f"#diagram-{anchor}", "class") in (None, "node")  # one highlight at a time
    assert messages == []


def test_the_per_prompt_view_lists_the_prompts_where_the_circuit_helps_least(run, browser_page):
    """circ.run keeps every prompt's values, so the saved report has the per-prompt
    views: the rows shown are the lowest sums of the circuit's nodes, with their text."""
    _, results, report = run
    page, messages = browser_page
    lists = json.loads((report.parent / "per_prompt.json").read_text())["direct"]
    members = [n["id"] for n in results["circuits"]["output"]["nodes"]]
    sums = [sum(lists[node][prompt] for node in members) for prompt in range(6)]
    rows = page.locator("#worst-direct tbody tr")
    shown = [int(rows.nth(i).get_attribute("data-prompt")) for i in range(rows.count())]
    assert shown == sorted(range(6), key=lambda prompt: (sums[prompt], prompt))[:5]
    assert rows.nth(0).locator("pre").inner_text().startswith("question :")
    page.locator("#worst-direct").scroll_into_view_if_needed()
    assert page.locator("#worst-direct").is_visible() and page.locator("#quantiles-direct").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#analysis-direct").screenshot(path=str(ARTIFACTS / "per-prompt-view.png"))
    assert messages == []
