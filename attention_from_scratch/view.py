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
``_repr_html_`` that calls :func:`notebook_html` (a result with batch dimensions falls
back to its plain ``repr``; pass ``batch=`` to :func:`to_html` for those). That view is
bounded, because a notebook displays every result a cell ends with: at most
:data:`NOTEBOOK_MAX_TOKENS` tokens and :data:`NOTEBOOK_MAX_HEADS` heads, and the
narratives of every pair only up to :data:`NOTEBOOK_MAX_PAIRS` pairs; beyond, numbers
and the calls that print or draw the rest.

Token text is escaped: it reaches the page as JSON whose ``<``, ``>`` and ``&`` are
written as ``\u`` escapes, and the script inserts it with ``textContent``, never as
HTML, so a token such as ``<script>`` is shown, not run.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

from attention_from_scratch._checks import check_instance
from attention_from_scratch._results import register_notebook_display
from attention_from_scratch.explain import (
    QueryExplanation,
    ScoreExplanation,
    explain_query,
    explain_score,
)
from attention_from_scratch.self_attention import Attention, ProjectedAttention

__all__ = [
    "NOTEBOOK_MAX_HEADS",
    "NOTEBOOK_MAX_PAIRS",
    "NOTEBOOK_MAX_TOKENS",
    "notebook_html",
    "to_html",
]

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

  function num(x) { return String(+x.toPrecision(4)); }

  // A page without embedded pair narratives (the bounded notebook view) shows the
  // pair's numbers and the Python call that prints its narrative.
  function brief(head, i, j) {
    var q = "'" + data.query_tokens[i] + "'", k = "'" + data.key_tokens[j] + "'";
    var call = head.call.replace("{i}", i).replace("{j}", j);
    if (head.masked[i][j]) {
      return q + " does not attend to " + k + ": the pair is masked, so its weight is " +
        "exactly 0.\nWhy, in Python: " + call;
    }
    var row = head.weights[i], w = row[j], rank = 1, allowed = 0;
    row.forEach(function (v, l) {
      if (v > w) { rank += 1; }
      if (!head.masked[i][l]) { allowed += 1; }
    });
    return q + " attends to " + k + " with weight " + num(w) + " (rank " + rank + " of " +
      allowed + (allowed === 1 ? " key" : " keys") + "; score " + num(head.scores[i][j]) +
      ").\nWhy, in Python: " + call;
  }

  function pick(i, j) {
    state.query = i; state.key = j;
    render();
    var head = data.heads[state.head];
    text.textContent = head.explanations ? head.explanations[i][j] : brief(head, i, j);
  }

  function showQuery(i) {
    state.query = i; state.key = null;
    render();
    var head = data.heads[state.head];
    if (head.queries) { text.textContent = head.queries[i]; return; }
    var q = "'" + data.query_tokens[i] + "'", e = head.effective_keys[i];
    var spread = head.masked[i].every(Boolean) ? " attends to nothing: every key is masked." :
      " spreads its attention over about " + num(e) + (e === 1 ? " key" : " keys") +
      " (e^entropy).";
    text.textContent = q + spread + "\nWhy, in Python: " + head.query_call.replace("{i}", i);
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
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _head_ids(result: Attention | ProjectedAttention) -> list[int | None]:
    """The heads a view can show: ``0 .. h-1``, or ``[None]`` for a result without heads."""
    return result.head_ids() if isinstance(result, ProjectedAttention) else [None]


def _payload(
    result: Attention | ProjectedAttention,
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None,
    batch: int | tuple[int, ...] | None,
    feature_names: Sequence[str] | None,
    *,
    heads: Sequence[int | None],
    pairs: bool = True,
) -> dict[str, Any]:
    """The page's data: per head, weights, masks, query narratives and pair narratives.

    With ``pairs=False`` the narratives (``h n m`` calls of ``explain_score``, most of
    the cost and the size) are left out; the page then shows a pair's weight, rank and
    score, or a query's effective number of keys, and the call that prints the
    narrative (``scores``, ``effective_keys``, ``call``, ``query_call``).
    """
    heads_out = []
    query_tokens: tuple[str, ...] = ()
    key_tokens: tuple[str, ...] = ()
    for head in heads:
        first = explain_query(result, 0, batch=batch, head=head, tokens=tokens)
        rows = [first] + [
            explain_query(result, i, batch=batch, head=head, tokens=tokens)
            for i in range(1, len(first.query_tokens))
        ]
        query_tokens, key_tokens = rows[0].query_tokens, rows[0].key_tokens
        head_arg = "" if head is None else f", head={head}"
        entry: dict[str, Any] = {
            "label": "single head" if head is None else f"head {head}",
            "weights": [[round(float(w), 6) for w in row.weights] for row in rows],
            "masked": [[not bool(a) for a in row.allowed] for row in rows],
        }
        if pairs:
            entry["queries"] = [str(row) for row in rows]
            entry["explanations"] = [
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
                    for j in range(len(key_tokens))
                ]
                for i in range(len(query_tokens))
            ]
        else:  # numbers, and the calls that print the narratives
            entry["scores"] = [
                [
                    round(float(x), 6) if a else None
                    for x, a in zip(row.scores, row.allowed, strict=True)
                ]
                for row in rows
            ]
            entry["effective_keys"] = [round(row.effective_keys, 4) for row in rows]
            entry["call"] = f"print(explain_score(result, {{i}}, {{j}}{head_arg}))"
            entry["query_call"] = f"print(explain_query(result, {{i}}{head_arg}))"
        heads_out.append(entry)
    return {
        "query_tokens": list(query_tokens),
        "key_tokens": list(key_tokens),
        "heads": heads_out,
    }


def to_html(
    result: Attention | ProjectedAttention,
    /,
    *,
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None = None,
    title: str | None = None,
    batch: int | tuple[int, ...] | None = None,
    feature_names: Sequence[str] | None = None,
    heads: Sequence[int] | None = None,
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
    heads : sequence of int, optional
        The heads to show (default: all); a page holds :math:`n \, m` explanations per
        head, so a subset keeps a page of many heads small.
    fragment : bool, optional
        Return only the ``<div>`` with its style and script (for Jupyter), not a page.

    Returns
    -------
    str
        The HTML text. It loads nothing from the network.

    Raises
    ------
    TypeError, ValueError, IndexError
        As :func:`~attention_from_scratch.explain.explain_score` (an unknown head is an
        :class:`IndexError`); ``ValueError`` also if ``heads`` is empty, ``TypeError``
        if ``title`` is not a string.

    See Also
    --------
    notebook_html, attention_from_scratch.explain.explain_score,
    attention_from_scratch.explain.heatmap

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
    >>> print("'creature' attends to 'fluffy' (0.5741) more than to 'blue'" in page)
    True
    """
    if title is not None:
        check_instance(title, str, "title")
    shown: list[int | None] = _head_ids(result) if heads is None else list(heads)
    if not shown:
        msg = "heads must name at least one head, got an empty sequence"
        raise ValueError(msg)
    payload = _payload(result, tokens, batch, feature_names, heads=shown)
    return _page(payload, title=title, fragment=fragment, total_heads=len(_head_ids(result)))


def _page(
    payload: dict[str, Any], *, title: str | None, fragment: bool, total_heads: int, note: str = ""
) -> str:
    """The view's HTML around ``payload``: a page, or its ``<div>`` when ``fragment``."""
    heading = html.escape(title if title is not None else "Attention")
    labels = [head["label"] for head in payload["heads"]]
    subtitle = f"{len(payload['query_tokens'])} queries x {len(payload['key_tokens'])} keys"
    if len(labels) < total_heads:
        shown = ", ".join(labels) if len(labels) <= 3 else str(len(labels))
        subtitle += f", {shown} of {total_heads} heads shown"
    elif total_heads > 1:
        subtitle += f", {total_heads} heads"
    body = (
        f'<div class="afs-view"><style>{_CSS}</style>'
        f'<h1>{heading}</h1><div class="afs-sub">{html.escape(subtitle)}</div>{note}'
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


NOTEBOOK_MAX_TOKENS = 64
"""The notebook view draws at most this many queries and keys per head."""
NOTEBOOK_MAX_HEADS = 16
"""The notebook view draws at most this many heads (the first ones)."""
NOTEBOOK_MAX_PAIRS = 256
"""Up to this many (head, query, key) pairs the notebook view embeds every narrative."""


def _layout(result: Attention | ProjectedAttention) -> tuple[tuple[int, ...], int, int, int]:
    """``(batch_shape, n_heads, n, m)`` of a result, read from its weights' shape."""
    if isinstance(result, ProjectedAttention):
        *lead, _, n, m = result.with_head_axis(result.weights).shape
        return tuple(lead), result.n_heads, n, m
    *lead, n, m = result.weights.shape
    return tuple(lead), 1, n, m


def notebook_html(result: Attention | ProjectedAttention, /) -> str | None:
    """The bounded view of ``result`` for Jupyter, or None when it needs ``batch=``.

    Used by the results' ``_repr_html_``: Jupyter shows the fragment, and falls back to
    the plain ``repr`` when this returns None. Every cell of a notebook that ends in a
    result displays it, so the view is kept cheap and small:

    * up to :data:`NOTEBOOK_MAX_TOKENS` queries and keys and :data:`NOTEBOOK_MAX_HEADS`
      heads, the interactive view of :func:`to_html` (the first heads, with a note
      giving the call that shows the others);
    * beyond :data:`NOTEBOOK_MAX_TOKENS` tokens, a short summary (shapes, heads) and the
      calls that show the rest;
    * up to :data:`NOTEBOOK_MAX_PAIRS` (head, query, key) pairs it embeds every pair's
      narrative, as :func:`to_html` does; beyond, a click on a pair shows its weight,
      rank and score and the ``explain_score`` call that prints its narrative (the
      narratives are most of the cost of a page: about 1 ms each).

    Parameters
    ----------
    result : Attention or ProjectedAttention
        An attention result.

    Returns
    -------
    str or None
        An HTML fragment (a ``<div>``), or None for a result with batch dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.projections import AttentionParams
    >>> from attention_from_scratch.self_attention import multi_head_attention
    >>> from attention_from_scratch.view import notebook_html
    >>> x = np.random.default_rng(0).normal(size=(80, 8))
    >>> result = multi_head_attention(x, AttentionParams.random(8, 2, n_heads=2, rng=0),
    ...                               n_heads=2)
    >>> print("to_html(result, heads=[0])" in notebook_html(result))
    True
    """
    batch_shape, n_heads, n, m = _layout(result)
    if math.prod(batch_shape) > 1:  # which sequence to show is the caller's choice
        return None
    if max(n, m) > NOTEBOOK_MAX_TOKENS:
        return _summary_html(n_heads, n, m)
    shown: list[int | None] = _head_ids(result)[:NOTEBOOK_MAX_HEADS]
    pairs = len(shown) * n * m <= NOTEBOOK_MAX_PAIRS
    payload = _payload(result, None, None, None, heads=shown, pairs=pairs)
    note = ""
    if len(shown) < n_heads:
        rest = f"to_html(result, heads=range({len(shown)}, {n_heads}))"
        note = (
            f'<p class="afs-sub">Heads 0 to {len(shown) - 1} of {n_heads} are shown here; '
            f"the others: <code>{html.escape(rest)}</code> (a page; "
            "<code>from attention_from_scratch.view import to_html</code>).</p>"
        )
    return _page(payload, title=None, fragment=True, total_heads=n_heads, note=note)


def _summary_html(n_heads: int, n: int, m: int) -> str:
    """The notebook summary of a result too long to draw: its shape and the calls."""
    heads = f"{n_heads} head{'' if n_heads == 1 else 's'}"
    head_arg = ", heads=[0]" if n_heads > 1 else ""
    calls = [
        ("a page of one head", f"to_html(result{head_arg})"),
        ("one query, why", f"print(explain_query(result, 0{', head=0' if n_heads > 1 else ''}))"),
    ]
    items = "".join(
        f"<li>{html.escape(what)}: <code>{html.escape(call)}</code></li>" for what, call in calls
    )
    return (
        f'<div class="afs-view"><style>{_CSS}</style><h1>Attention</h1>'
        f'<div class="afs-sub">{n} queries x {m} keys, {heads}: no head or row is shown '
        f"here, because the notebook view draws at most {NOTEBOOK_MAX_TOKENS} x "
        f"{NOTEBOOK_MAX_TOKENS} tokens.</div><ul>{items}</ul>"
        "<p>From <code>attention_from_scratch.view</code> (<code>to_html</code>) and "
        "<code>attention_from_scratch.explain</code>; write the page to a file and open it "
        "in a browser.</p></div>"
    )


def _text_html(text: str) -> str:
    """A narrative (``str`` of an explanation) as an escaped, styled HTML fragment."""
    return (
        f'<div class="afs-view"><style>{_CSS}</style>'
        f'<pre class="afs-text">{html.escape(text)}</pre></div>'
    )


def _display(obj: object) -> str | None:
    """What a notebook shows for a result (the bounded view) or an explanation (its text)."""
    if isinstance(obj, ScoreExplanation | QueryExplanation):
        return _text_html(str(obj))
    if isinstance(obj, Attention | ProjectedAttention):
        return notebook_html(obj)
    return None


# Results and explanations sit below this module; they display through this renderer.
register_notebook_display(_display)
