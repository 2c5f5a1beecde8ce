r"""A standalone HTML view of an attention result, with explanations on click.

:func:`to_html` writes one self-contained page (inline CSS and JavaScript, no network,
no CDN) with

* the **head view** of :cite:t:`vig2019multiscale`: the tokens in two columns, queries
  on the left and keys on the right, joined by lines whose opacity is the weight;
  hovering a query shows only its lines;
* the **weight matrix**, each cell shaded by its weight;
* a **head selector** for multi-head results;
* the **explanation** of a (query, key) pair when its cell or line is clicked: the same
  narrative and numbers as :func:`~attention_from_scratch.explain.explain_score`,
  computed in Python and embedded in the page.

In Jupyter the same view appears by itself: attention results and explanations have a
``_repr_html_`` that calls this module (a result with batch dimensions falls back to
its plain ``repr``; pass ``batch=`` to :func:`to_html` for those).

Token text is escaped: it reaches the page as JSON whose ``<``, ``>`` and ``&`` are
written as ``\u`` escapes, and the script inserts it with ``textContent``, never as
HTML, so a token such as ``<script>`` is shown, not run.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from attention_from_scratch.explain import explain_query, explain_score
from attention_from_scratch.self_attention import Attention, ProjectedAttention

__all__ = ["to_html"]

_CSS = """
.afs-view { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem;
       color: #1d2430; background: #fff; }
.afs-view h1 { font-size: 1.4rem; margin: 0 0 .5rem 0; }
.afs-sub { color: #5b6573; margin-bottom: 1rem; }
.afs-wrap { display: flex; flex-wrap: wrap; gap: 2rem; align-items: flex-start; }
.afs-panel h2 { font-size: 1rem; margin: .2rem 0 .6rem 0; }
.afs-heads button { margin: 0 .25rem .5rem 0; padding: .2rem .6rem; border: 1px solid #9aa5b1;
       background: #f4f6f8; border-radius: 4px; cursor: pointer; }
.afs-heads button.afs-on { background: #2b6cb0; color: #fff; border-color: #2b6cb0; }
.afs-view svg text { font-size: 14px; cursor: pointer; }
.afs-view svg line { cursor: pointer; }
table.afs-matrix { border-collapse: collapse; }
table.afs-matrix th { font-weight: 600; padding: .25rem .4rem; font-size: .85rem; }
table.afs-matrix td { width: 3.6rem; height: 2rem; text-align: center; font-size: .8rem;
       border: 1px solid #e2e6ea; cursor: pointer; font-variant-numeric: tabular-nums; }
table.afs-matrix td.afs-masked { background: repeating-linear-gradient(45deg, #f4f4f4,
       #f4f4f4 4px, #e6e6e6 4px, #e6e6e6 8px); color: #8a94a0; }
table.afs-matrix td.afs-picked { outline: 3px solid #d69e2e; outline-offset: -3px; }
pre.afs-text { white-space: pre-wrap; background: #f7f9fb; border: 1px solid #e2e6ea;
       padding: .8rem; max-width: 52rem; font-size: .85rem; line-height: 1.45; }
"""

_JS = r"""
(function () {
  "use strict";
  var container = document.currentScript.parentNode;
  var root = container.querySelector(".afs-root");
  var data = JSON.parse(container.querySelector(".afs-data").textContent);
  var state = { head: 0, query: null, key: null };
  var svgNS = "http://www.w3.org/2000/svg";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function shade(w) {
    var light = Math.round(255 - 200 * w);
    return "rgb(" + light + "," + Math.round(255 - 120 * w) + ",255)";
  }

  function drawHeads(box) {
    box.textContent = "";
    if (data.heads.length < 2) { return; }
    data.heads.forEach(function (head, h) {
      var b = el("button", h === state.head ? "afs-on" : "", head.label);
      b.addEventListener("click", function () { state.head = h; render(); });
      box.appendChild(b);
    });
  }

  function drawLines(box) {
    box.textContent = "";
    var head = data.heads[state.head];
    var n = data.query_tokens.length, m = data.key_tokens.length;
    var longest = 0;
    data.query_tokens.concat(data.key_tokens).forEach(function (t) {
      longest = Math.max(longest, t.length);
    });
    var pad = Math.min(320, 8 * longest + 12), gap = 120;
    var rowH = 26, width = 2 * pad + gap + 20, top = 16;
    var height = top + rowH * Math.max(n, m);
    var svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("role", "img");
    for (var i = 0; i < n; i++) {
      for (var j = 0; j < m; j++) {
        var w = head.weights[i][j];
        if (w <= 0) { continue; }
        var line = document.createElementNS(svgNS, "line");
        line.setAttribute("x1", pad + 10); line.setAttribute("y1", top + rowH * i);
        line.setAttribute("x2", pad + 10 + gap); line.setAttribute("y2", top + rowH * j);
        line.setAttribute("stroke", "#2b6cb0");
        line.setAttribute("stroke-width", 3);
        var show = state.query === null || state.query === i;
        line.setAttribute("stroke-opacity", show ? w : 0);
        line.addEventListener("click", pick.bind(null, i, j));
        svg.appendChild(line);
      }
    }
    function label(x, y, text, anchor, onClick, onHover) {
      var t = document.createElementNS(svgNS, "text");
      t.setAttribute("x", x); t.setAttribute("y", y + 5);
      t.setAttribute("text-anchor", anchor);
      t.textContent = text;
      if (onClick) { t.addEventListener("click", onClick); }
      if (onHover) { t.addEventListener("mouseenter", onHover); }
      svg.appendChild(t);
    }
    data.query_tokens.forEach(function (tok, i) {
      label(pad, top + rowH * i, tok, "end", function () { showQuery(i); },
            function () { state.query = i; drawLines(box); });
    });
    data.key_tokens.forEach(function (tok, j) { label(pad + 20 + gap, top + rowH * j, tok, "start"); });
    svg.addEventListener("mouseleave", function () {
      if (state.query !== null && state.key === null) { state.query = null; drawLines(box); }
    });
    box.appendChild(svg);
  }

  function drawMatrix(box) {
    box.textContent = "";
    var head = data.heads[state.head];
    var table = el("table", "afs-matrix");
    var tr = el("tr");
    tr.appendChild(el("th", "", "query \u2193 key \u2192"));
    data.key_tokens.forEach(function (tok) { tr.appendChild(el("th", "", tok)); });
    table.appendChild(tr);
    head.weights.forEach(function (row, i) {
      var r = el("tr");
      r.appendChild(el("th", "", data.query_tokens[i]));
      row.forEach(function (w, j) {
        var masked = head.masked[i][j];
        var td = el("td", masked ? "afs-masked" : "", masked ? "masked" : w.toFixed(3));
        if (!masked) { td.style.background = shade(w); }
        if (state.query === i && state.key === j) { td.className += " afs-picked"; }
        td.addEventListener("click", pick.bind(null, i, j));
        r.appendChild(td);
      });
      table.appendChild(r);
    });
    box.appendChild(table);
  }

  function pick(i, j) {
    state.query = i; state.key = j;
    render();
    text.textContent = data.heads[state.head].explanations[i][j];
  }

  function showQuery(i) {
    state.query = i; state.key = null;
    render();
    text.textContent = data.heads[state.head].queries[i];
  }

  var heads = el("div", "afs-heads");
  var wrap = el("div", "afs-wrap");
  var left = el("div", "afs-panel"), right = el("div", "afs-panel");
  left.appendChild(el("h2", "", "Head view (click a line or a query)"));
  var lines = el("div");
  left.appendChild(lines);
  right.appendChild(el("h2", "", "Weights (click a cell)"));
  var matrix = el("div");
  right.appendChild(matrix);
  wrap.appendChild(left); wrap.appendChild(right);
  var text = el("pre", "afs-text", "Click a cell of the matrix, a line or a query token to see why.");
  root.appendChild(heads); root.appendChild(wrap);
  root.appendChild(el("h2", "", "Explanation"));
  root.appendChild(text);

  function render() { drawHeads(heads); drawLines(lines); drawMatrix(matrix); }
  render();
  // A link may name a pair: page.html#pick=QUERY,KEY[,HEAD]
  var linked = /pick=(\d+),(\d+)(?:,(\d+))?/.exec(window.location.hash);
  if (linked && +linked[1] < data.query_tokens.length && +linked[2] < data.key_tokens.length) {
    if (linked[3] !== undefined && +linked[3] < data.heads.length) { state.head = +linked[3]; }
    pick(+linked[1], +linked[2]);
  }
  root.setAttribute("data-rendered", "ok");
})();
"""


def _safe_json(payload: Any) -> str:
    """JSON that cannot close its ``<script>`` element or start markup."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _payload(
    result: Attention | ProjectedAttention,
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None,
    batch: int | tuple[int, ...] | None,
    feature_names: Sequence[str] | None,
) -> dict[str, Any]:
    if isinstance(result, ProjectedAttention) and result.has_head_axis:
        head_ids: list[int | None] = list(range(result.n_heads))
    else:
        head_ids = [None]
    heads = []
    query_tokens: tuple[str, ...] = ()
    key_tokens: tuple[str, ...] = ()
    for head in head_ids:
        first = explain_query(result, 0, batch=batch, head=head, tokens=tokens)
        n, m = len(first.query_tokens), len(first.key_tokens)
        query_tokens, key_tokens = first.query_tokens, first.key_tokens
        weights, masked, explanations, queries = [], [], [], []
        for i in range(n):
            row = explain_query(result, i, batch=batch, head=head, tokens=tokens)
            queries.append(str(row))
            weights.append([round(float(w), 6) for w in row.weights])
            masked.append([not bool(a) for a in row.allowed])
            explanations.append(
                [
                    str(
                        explain_score(
                            result,
                            i,
                            j,
                            batch=batch,
                            head=head,
                            tokens=tokens,
                            feature_names=feature_names,
                        )
                    )
                    for j in range(m)
                ]
            )
        label = "single head" if head is None else f"head {head}"
        heads.append(
            {
                "label": label,
                "weights": weights,
                "masked": masked,
                "explanations": explanations,
                "queries": queries,
            }
        )
    return {"query_tokens": list(query_tokens), "key_tokens": list(key_tokens), "heads": heads}


def to_html(
    result: Attention | ProjectedAttention,
    /,
    *,
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None = None,
    title: str | None = None,
    batch: int | tuple[int, ...] | None = None,
    feature_names: Sequence[str] | None = None,
    fragment: bool = False,
) -> str:
    r"""One self-contained HTML page showing ``result``, with explanations on click.

    Parameters
    ----------
    result : Attention or ProjectedAttention
        From :func:`~attention_from_scratch.self_attention.scaled_dot_product_attention`,
        :func:`~attention_from_scratch.self_attention.self_attention` or
        :func:`~attention_from_scratch.self_attention.multi_head_attention`.
    tokens : sequence of str, or a pair of them, optional
        Token labels (a pair ``(query_tokens, key_tokens)`` for cross-attention).
    title : str, optional
        The page title; default "Attention".
    batch : int or tuple of int, optional
        Which sequence of a batched result to show.
    feature_names : sequence of str, optional
        Names of the embedding features, used by the explanations.
    fragment : bool, optional
        Return only the ``<div>`` with its style and script (for Jupyter), not a page.

    Returns
    -------
    str
        The HTML text. It loads nothing from the network.

    Raises
    ------
    TypeError, ValueError, IndexError
        As :func:`~attention_from_scratch.explain.explain_score`.

    See Also
    --------
    attention_from_scratch.explain.explain_score, attention_from_scratch.explain.heatmap

    Notes
    -----
    In code, ``json.dumps`` of every explanation, then a small script that draws them.
    The page is the head view of BertViz :cite:p:`vig2019multiscale` with the
    explanations of :func:`~attention_from_scratch.explain.explain_score` attached to
    every line and cell; it holds :math:`h \, n \, m` explanations, so it is meant for
    the short sequences one reads by hand. All text enters the page through
    ``textContent``, so tokens are shown literally and never interpreted as HTML.

    References
    ----------
    :cite:t:`vig2019multiscale`.

    Examples
    --------
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> from attention_from_scratch.self_attention import self_attention
    >>> from attention_from_scratch.view import to_html
    >>> ex = fluffy_blue_creature()
    >>> page = to_html(self_attention(ex.x, ex.params), tokens=ex.tokens, title="fluffy")
    >>> print(page.startswith("<!DOCTYPE html>"), "http" in page.replace("http://www.w3.org", ""))
    True False
    >>> print("'creature' attends to 'fluffy' because" in page)
    True
    """
    payload = _payload(result, tokens, batch, feature_names)
    heading = html.escape(title if title is not None else "Attention")
    n_heads = len(payload["heads"])
    subtitle = f"{len(payload['query_tokens'])} queries x {len(payload['key_tokens'])} keys" + (
        f", {n_heads} heads" if n_heads > 1 else ""
    )
    body = (
        f'<div class="afs-view"><style>{_CSS}</style>'
        f'<h1>{heading}</h1><div class="afs-sub">{html.escape(subtitle)}</div>'
        f'<div class="afs-root"></div>'
        f'<script type="application/json" class="afs-data">{_safe_json(payload)}</script>'
        f"<script>{_JS}</script></div>"
    )
    if fragment:
        return body
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{heading}</title></head><body>{body}</body></html>\n"
    )


def _notebook_html(result: Attention | ProjectedAttention) -> str | None:
    """The view of ``result`` as a notebook fragment, or None when it needs ``batch=``.

    Used by the results' ``_repr_html_``: Jupyter shows the fragment, and falls back to
    the plain ``repr`` when this returns None.
    """
    try:
        return to_html(result, fragment=True)
    except ValueError:  # a batched result: which sequence to show is the caller's choice
        return None


def _text_html(text: str) -> str:
    """A narrative (``str`` of an explanation) as an escaped, styled HTML fragment."""
    return (
        f'<div class="afs-view"><style>{_CSS}</style>'
        f'<pre class="afs-text">{html.escape(text)}</pre></div>'
    )
