"""The report's own script and its styles: plain inline JavaScript, no library, no
network. Three jobs: the attention explorers (data read from their JSON script
elements, DOM built with `textContent` only), sortable tables (click a header), and
links to an id in the page that highlight what they jump to (a table row, a heatmap
cell, a diagram node)."""

STYLE = """
.explorer { margin: 6px 0 12px; }
.explorer select { font-size: 13px; margin-right: 8px; max-width: 360px; }
.explorer .readout { font-size: 13px; color: #333; margin: 6px 0; min-height: 1.4em; }
.explorer .tokens { font-family: "DejaVu Sans Mono", monospace; font-size: 13px;
                    line-height: 2.1; border: 1px solid #e3e3e3; padding: 6px; }
.explorer .tok { padding: 2px 1px; margin: 0 1px; border-radius: 2px; cursor: pointer;
                 white-space: pre; }
.explorer .tok.future { color: #aaa; }
.explorer .tok.query { outline: 2px solid #e08000; }
.explorer .tok.hovered { outline: 2px solid #24292f; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.jumped td { background: #fff3b0; }
g.jumped path, g.jumped polygon, g.jumped ellipse, g.jumped rect {
  stroke: #f0a000 !important; stroke-width: 4px !important; }
"""

SCRIPT = r"""
(function () {
  "use strict";

  function option(select, value, text) {
    var item = document.createElement("option");
    item.value = String(value);
    item.textContent = text;
    select.appendChild(item);
  }

  function visible(token) {
    return token.replace(/ /g, "\u2423").replace(/\n/g, "\\n");
  }

  function quoted(token) { return "\u201c" + visible(token) + "\u201d"; }

  function explorer(box) {
    var data = JSON.parse(document.getElementById(box.dataset.source).textContent);
    var promptPick = box.querySelector(".pick-prompt");
    var headPick = box.querySelector(".pick-head");
    var queryPick = box.querySelector(".pick-query");
    var readout = box.querySelector(".readout");
    var strip = box.querySelector(".tokens");
    data.examples.forEach(function (example, index) {
      var words = example.tokens.slice(0, 8).join(" ");
      option(promptPick, index, "prompt " + (index + 1) + ": " + words + (example.tokens.length > 8 ? "\u2026" : ""));
    });
    data.heads.forEach(function (head) { option(headPick, head, head); });

    function example() { return data.examples[Number(promptPick.value)]; }

    function fillQueries() {
      var ex = example();
      queryPick.textContent = "";
      ex.rows.forEach(function (q, index) {
        var mark = ex.query.indexOf(q) >= 0 ? "  (the analysis's query)" : "";
        option(queryPick, index, q + ": " + visible(ex.tokens[q]) + mark);
      });
      var preferred = ex.rows.indexOf(ex.query[ex.query.length - 1]);
      queryPick.value = String(preferred >= 0 ? preferred : ex.rows.length - 1);
    }

    function say(text) { readout.textContent = text; }

    function draw() {
      var ex = example();
      var rowIndex = Number(queryPick.value);
      var q = ex.rows[rowIndex];
      var row = ex.patterns[headPick.value][rowIndex].map(function (w) { return w / data.scale; });
      strip.textContent = "";
      ex.tokens.forEach(function (token, k) {
        var span = document.createElement("span");
        span.className = "tok";
        span.textContent = visible(token);
        span.dataset.position = String(k);
        if (k < row.length) {
          var weight = row[k];
          span.dataset.weight = String(weight);
          span.style.background = "rgba(33, 102, 172, " + Math.min(1, Math.max(0, weight)) + ")";
          if (weight > 0.55) { span.style.color = "#fff"; }
          span.title = "weight " + weight;
        } else {
          span.className += " future";
          span.title = "after the query: not attended";
        }
        if (k === q) { span.className += " query"; }
        span.addEventListener("mouseenter", function () {
          span.classList.add("hovered");
          say(headPick.value + ", query " + q + " " + quoted(ex.tokens[q]) + " \u2192 key " + k + " " +
              quoted(token) + ": " + (k < row.length ? "weight " + row[k] : "after the query"));
        });
        span.addEventListener("mouseleave", function () { span.classList.remove("hovered"); });
        span.addEventListener("click", function () {
          var index = ex.rows.indexOf(k);
          if (index >= 0) { queryPick.value = String(index); draw(); }
        });
        strip.appendChild(span);
      });
      var best = 0;
      row.forEach(function (w, k) { if (w > row[best]) { best = k; } });
      say(headPick.value + ", query " + q + " " + quoted(ex.tokens[q]) + ": most weight on key " + best +
          " " + quoted(ex.tokens[best]) + " (" + row[best] + ")");
    }

    promptPick.addEventListener("change", function () { fillQueries(); draw(); });
    headPick.addEventListener("change", draw);
    queryPick.addEventListener("change", draw);
    if (data.examples.length && data.heads.length) { fillQueries(); draw(); }
  }

  function sortValue(cell) {
    var raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent;
    var number = Number(raw);
    return raw !== "" && !isNaN(number) ? number : raw;
  }

  function sortable(table) {
    var headers = table.querySelectorAll("thead th");
    headers.forEach(function (th, column) {
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = sortValue(a.cells[column]), y = sortValue(b.cells[column]);
          var order;
          if (typeof x === "number" && typeof y === "number") { order = x - y; }
          else if (typeof x === "number") { order = -1; }
          else if (typeof y === "number") { order = 1; }
          else { order = String(x).localeCompare(String(y), undefined, {numeric: true}); }
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }

  var jumped = null;
  function jumpTo(id) {
    var target = document.getElementById(id);
    if (!target) { return; }
    if (jumped) { jumped.classList.remove("jumped"); }
    target.classList.add("jumped");
    jumped = target;
    target.scrollIntoView({block: "center"});
  }

  document.querySelectorAll(".explorer").forEach(explorer);
  document.querySelectorAll("table.sortable").forEach(sortable);
  document.querySelectorAll("a.jump").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var id = link.getAttribute("href").slice(1);
      history.replaceState(null, "", "#" + id);
      jumpTo(id);
    });
  });
  if (location.hash.length > 1) { jumpTo(decodeURIComponent(location.hash.slice(1))); }
})();
"""
