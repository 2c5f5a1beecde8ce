r"""A standalone HTML view of attention results, with explanations on click.

:func:`to_html` writes one self-contained page (inline CSS and JavaScript, no network,
no CDN). It shows what the visualisers of :cite:t:`vig2019multiscale`,
:cite:t:`cho2024transformer` and :cite:t:`yeh2023attentionviz` show, and answers "why?"
for every picture with numbers that reconcile:

* the **model view**: a grid of small heatmaps, one per layer and head, for a list of
  results (the layers of an encoder) or a multi-head result; clicking one (or Enter)
  opens that head;
* the **head view**: the tokens in two columns, queries on the left and keys on the
  right, joined by lines whose opacity is the weight;
* the **weight matrix**, each cell shaded by its weight; hovering shows the weight, Tab
  reaches every cell and Enter explains it;
* the **explanation** of a clicked pair: every number of
  :func:`~attention_from_scratch.explain.explain_score` (weight, rank, raw score,
  scale, :math:`\lVert q\rVert`, :math:`\lVert k\rVert`, cosine, the rival key and
  the gaps), the **neuron view** (bars of :math:`q`, :math:`k` and :math:`q \circ k`
  per head dimension, which sum to the raw score), the **feature-pair contributions**
  when the page holds the embeddings and the weights, and the **contrast** with the
  rival key as waterfalls that sum to the gap;
* a **scale slider** that multiplies the dot products by a factor from 0 to four
  times :math:`1/\sqrt{d_k}` (at least to 1, "no scale") and recomputes the row's
  softmax, entropy and largest weight;
* the **joint query--key map** of :func:`joint_map`: queries and keys projected
  together to 2-D, with the variance the projection keeps.

The page computes these numbers itself, in the same float64 arithmetic, from the
result's own arrays embedded exactly (base64 of their float64 bytes): the queries,
keys and weights of each head, and, when small enough, the embeddings and projection
weights for the feature pairs. So a page of every head of a real model stays small (six
layers of twelve heads of all-MiniLM-L6-v2 on 15 tokens: about 1 MB). The narratives
(``str()`` of the explanations) are embedded too while the page has at most
:data:`PAGE_MAX_PAIRS` (head, query, key) pairs; beyond, a click shows the numbers and
the call that prints the narrative.

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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from attention_from_scratch._checks import check_instance, read_only
from attention_from_scratch._results import register_notebook_display
from attention_from_scratch.explain import (
    QueryExplanation,
    ScoreExplanation,
    explain_query,
    explain_score,
)
from attention_from_scratch.norms import l2_norm
from attention_from_scratch.self_attention import Attention, ProjectedAttention

__all__ = [
    "NOTEBOOK_MAX_HEADS",
    "NOTEBOOK_MAX_PAIRS",
    "NOTEBOOK_MAX_TOKENS",
    "PAGE_MAX_FEATURE_VALUES",
    "PAGE_MAX_PAIRS",
    "JointMap",
    "joint_map",
    "notebook_html",
    "to_html",
]

Result = Attention | ProjectedAttention
Float64Array = NDArray[np.float64]

PAGE_MAX_PAIRS = 1024
"""Up to this many (head, query, key) pairs :func:`to_html` embeds every narrative."""
PAGE_MAX_FEATURE_VALUES = 65536
"""Up to this many embedding and weight values a page embeds them for the feature pairs."""

_BASE_CSS = """
.afs-view { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1rem;
       color: #1d2430; background: #fff; }
.afs-view h1 { font-size: 1.4rem; margin: 0 0 .5rem 0; }
.afs-sub { color: #5b6573; margin-bottom: 1rem; }
pre.afs-text { white-space: pre-wrap; overflow-wrap: anywhere; background: #f7f9fb;
       border: 1px solid #e2e6ea; padding: .8rem; max-width: 52rem; font-size: .85rem;
       line-height: 1.45; }
"""  # the summary and the narratives in a notebook: no script, no drawing

_CSS = """
.afs-view { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1rem;
       color: #1d2430; background: #fff; max-width: 100%; box-sizing: border-box; }
.afs-view *, .afs-view *::before, .afs-view *::after { box-sizing: border-box; }
.afs-view h1 { font-size: 1.4rem; margin: 0 0 .5rem 0; overflow-wrap: anywhere; }
.afs-view h2 { font-size: 1.1rem; margin: 1.2rem 0 .5rem 0; overflow-wrap: anywhere; }
.afs-view h3, .afs-view h4 { font-size: 1rem; margin: .4rem 0 .5rem 0; overflow-wrap: anywhere; }
.afs-sub, .afs-note { color: #5b6573; margin: .3rem 0 1rem 0; max-width: 52rem;
       overflow-wrap: anywhere; }
.afs-wrap { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
.afs-panel { min-width: 0; max-width: 100%; }
.afs-scroll { overflow-x: auto; max-width: 100%; }
.afs-heads button, button.afs-thumb { margin: 0 .25rem .5rem 0; padding: .2rem .6rem;
       border: 1px solid #9aa5b1; background: #f4f6f8; border-radius: 4px; cursor: pointer; }
button.afs-thumb { padding: 2px; margin: 0; line-height: 0; }
button.afs-thumb canvas { width: 40px; height: 40px; image-rendering: pixelated; }
button.afs-thumb.afs-on { outline: 3px solid #d69e2e; border-color: #d69e2e; }
button:focus-visible, td:focus-visible { outline: 3px solid #2b6cb0; outline-offset: 1px; }
table.afs-grid th { font-size: .75rem; font-weight: 600; padding: 0 .3rem; white-space: nowrap; }
table.afs-grid td { padding: 1px; }
.afs-view svg text { font-size: 13px; cursor: pointer; }
.afs-view svg text.afs-small { font-size: 11px; }
.afs-view svg line { cursor: pointer; }
table.afs-matrix { border-collapse: collapse; }
table.afs-matrix tr:first-child th:first-child { max-width: none; }
table.afs-matrix th { font-weight: 600; padding: .25rem .4rem; font-size: .85rem;
       max-width: 7rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
table.afs-matrix td { min-width: 3.4rem; height: 2rem; text-align: center; font-size: .8rem;
       border: 1px solid #e2e6ea; cursor: pointer; font-variant-numeric: tabular-nums; }
table.afs-matrix td.afs-masked { background: repeating-linear-gradient(45deg, #f4f4f4,
       #f4f4f4 4px, #e6e6e6 4px, #e6e6e6 8px); color: #8a94a0; }
table.afs-matrix td.afs-picked { outline: 3px solid #d69e2e; outline-offset: -3px; }
table.afs-numbers { border-collapse: collapse; font-size: .85rem; }
table.afs-numbers th { text-align: left; font-weight: 400; color: #5b6573; padding: .1rem .8rem .1rem 0; }
table.afs-numbers td { font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
pre.afs-text { white-space: pre-wrap; overflow-wrap: anywhere; background: #f7f9fb;
       border: 1px solid #e2e6ea; padding: .8rem; max-width: 52rem; font-size: .85rem;
       line-height: 1.45; }
.afs-rangebox { position: relative; max-width: 32rem; padding-bottom: 2.6rem; }
.afs-rangebox input { width: 100%; }
.afs-mark { position: absolute; top: 1.6rem; font-size: .72rem; white-space: nowrap;
       transform: translateX(-.4rem); color: #5b6573; }
.afs-mark + .afs-mark { top: 2.6rem; }
.afs-bars { max-width: 32rem; margin-top: .5rem; }
.afs-barline { display: flex; align-items: center; gap: .4rem; font-size: .8rem; }
.afs-barlabel { width: 6.5rem; flex: none; overflow: hidden; text-overflow: ellipsis;
       white-space: nowrap; text-align: right; }
.afs-track { flex: 1; min-width: 2rem; background: #eef1f4; height: .8rem; }
.afs-bar { display: block; height: 100%; background: #2b6cb0; }
.afs-barval { width: 4rem; flex: none; font-variant-numeric: tabular-nums; }
svg.afs-map { max-width: 100%; height: auto; }
@media (max-width: 600px) { .afs-view { margin: .4rem; } }
"""

_JS = r"""
(function () {
  "use strict";
  var container = document.currentScript.parentNode;
  var root = container.querySelector(".afs-root");
  var data = JSON.parse(container.querySelector(".afs-data").textContent);
  var svgNS = "http://www.w3.org/2000/svg";
  var QT = data.query_tokens, KT = data.key_tokens, n = QT.length, m = KT.length;
  var state = { layer: data.select[0], head: data.select[1], query: null, key: null, factor: null, hover: null };
  var STEPS = 1000;

  // ---- numbers ---------------------------------------------------------------------
  function f64(b64) {  // base64 of little-endian float64 -> Float64Array
    var s = atob(b64), buf = new ArrayBuffer(s.length), bytes = new Uint8Array(buf), t;
    for (t = 0; t < s.length; t++) { bytes[t] = s.charCodeAt(t); }
    var view = new DataView(buf), out = new Float64Array(s.length / 8);
    for (t = 0; t < out.length; t++) { out[t] = view.getFloat64(8 * t, true); }
    return out;
  }
  function layer() { return data.layers[state.layer]; }
  function prep(head) {
    if (head.W) { return head; }
    head.W = f64(head.weights);
    head.B = head.bias ? f64(head.bias) : null;
    head.R = head.raw ? f64(head.raw) : null;
    if (head.q) { head.Q = f64(head.q); head.K = f64(head.k); }
    if (head.w_q) {
      head.WQ = f64(head.w_q); head.WK = f64(head.w_k);
      head.BQ = head.b_q ? f64(head.b_q) : null; head.BK = head.b_k ? f64(head.b_k) : null;
    }
    return head;
  }
  function cur() { return prep(layer().heads[state.head]); }
  function ok(h, i, j) { return !h.allowed || h.allowed.charAt(i * m + j) === "1"; }
  function wt(h, i, j) { return h.W[i * m + j]; }
  function bias(h, i, j) { return h.B ? h.B[i * m + j] : 0; }
  function vec(arr, i, d) { return arr.subarray(i * d, (i + 1) * d); }
  function dot(a, b) { var s = 0; for (var t = 0; t < a.length; t++) { s += a[t] * b[t]; } return s; }
  function raw(h, i, j) { return h.R ? h.R[i * m + j] : dot(vec(h.Q, i, h.dk), vec(h.K, j, h.dk)); }
  function rawRow(h, i) { var r = []; for (var j = 0; j < m; j++) { r.push(raw(h, i, j)); } return r; }
  function norm(v) {  // scaled by a power of two, as the package's l2_norm: no overflow
    var big = 0, t;
    for (t = 0; t < v.length; t++) { big = Math.max(big, Math.abs(v[t])); }
    if (big === 0) { return 0; }
    var p = Math.pow(2, Math.floor(Math.log2(big))), s = 0;
    for (t = 0; t < v.length; t++) { s += (v[t] / p) * (v[t] / p); }
    return p * Math.sqrt(s);
  }
  function cosine(q, k, qn, kn) {
    if (qn === 0 || kn === 0) { return 0; }
    var s = 0;
    for (var t = 0; t < q.length; t++) { s += (q[t] / qn) * (k[t] / kn); }
    return Math.min(1, Math.max(-1, s));
  }
  // softmax over the allowed keys, stable: the largest score is subtracted first
  function softmax(scores, allow) {
    var top = -Infinity, j, sum = 0, out = [];
    for (j = 0; j < scores.length; j++) { if (allow[j]) { top = Math.max(top, scores[j]); } }
    for (j = 0; j < scores.length; j++) {
      out.push(allow[j] ? Math.exp(scores[j] - top) : 0); sum += out[j];
    }
    for (j = 0; j < scores.length; j++) { out[j] = sum > 0 ? out[j] / sum : 0; }
    return out;
  }
  function lse(scores, allow) {
    var top = -Infinity, j, sum = 0;
    for (j = 0; j < scores.length; j++) { if (allow[j]) { top = Math.max(top, scores[j]); } }
    if (top === -Infinity) { return -Infinity; }
    for (j = 0; j < scores.length; j++) { if (allow[j]) { sum += Math.exp(scores[j] - top); } }
    return top + Math.log(sum);
  }
  function entropy(p) {
    var s = 0;
    p.forEach(function (x) { if (x > 0) { s -= x * Math.log(x); } });
    return s;
  }
  function allowRow(h, i) { var a = []; for (var j = 0; j < m; j++) { a.push(ok(h, i, j)); } return a; }
  function bilinear(h) {  // W_Q W_K^T, (d_model, d_model), once per head
    if (h.M) { return h.M; }
    var d = h.d_model, dk = h.dk, M = new Float64Array(d * d);
    for (var a = 0; a < d; a++) {
      for (var b = 0; b < d; b++) {
        var s = 0;
        for (var t = 0; t < dk; t++) { s += h.WQ[a * dk + t] * h.WK[b * dk + t]; }
        M[a * d + b] = s;
      }
    }
    h.M = M;
    return M;
  }
  function xrow(i) { return vec(layer().X, i, layer().d_model); }
  function srow(j) { var L = layer(); return vec(L.S || L.X, j, L.d_model); }
  function prepLayer() {
    var L = layer();
    if (L.x && !L.X) { L.X = f64(L.x); L.S = L.xs ? f64(L.xs) : null; }
  }

  // Every number of explain_score, computed here from the embedded q, k and weights.
  function explain(h, i, j) {
    var row = rawRow(h, i), allow = allowRow(h, i), scores = [], l;
    for (l = 0; l < m; l++) { scores.push(allow[l] ? row[l] * h.scale + bias(h, i, l) : row[l] * h.scale); }
    var w = wt(h, i, j), e = { weight: w, raw_score: row[j], scale: h.scale,
      bias: allow[j] ? bias(h, i, j) : 0, masked: !allow[j] };
    e.score = row[j] * h.scale + e.bias;
    var rank = 1, tied = 0, nAllowed = 0, comp = null;
    for (l = 0; l < m; l++) {
      var v = wt(h, i, l);
      if (v > w) { rank += 1; }
      if (allow[l]) { nAllowed += 1; if (v === w && l !== j) { tied += 1; } }
      if (allow[l] && l !== j && (comp === null || v > wt(h, i, comp))) { comp = l; }
    }
    e.rank = rank; e.n_tied = tied; e.n_allowed = nAllowed; e.competitor = comp;
    e.competitor_weight = comp === null ? 0 : wt(h, i, comp);
    e.competitor_score = comp === null ? 0 : scores[comp];
    e.logsumexp = lse(scores, allow);
    var unscaled = row.map(function (r, k) { return r + (allow[k] ? bias(h, i, k) : 0); });
    e.unscaled_weight = nAllowed ? softmax(unscaled, allow)[j] : 0;
    if (!h.Q) { return e; }
    var q = vec(h.Q, i, h.dk), k = vec(h.K, j, h.dk);
    e.dims = []; for (l = 0; l < h.dk; l++) { e.dims.push(q[l] * k[l]); }
    e.q = q; e.k = k;
    e.query_norm = norm(q); e.key_norm = norm(k);
    e.cosine = cosine(q, k, e.query_norm, e.key_norm);
    if (h.WQ && layer().X) {
      var M = bilinear(h), d = h.d_model, xi = xrow(i), xj = srow(j), f = [];
      for (var a = 0; a < d; a++) { for (var b = 0; b < d; b++) { f.push(xi[a] * M[a * d + b] * xj[b]); } }
      e.features = f;
      var bq = h.BQ, bk = h.BK, dk = h.dk, t, s1 = 0, s2 = 0, s3 = 0;
      for (t = 0; t < dk; t++) {  // x_i W_Q b_K + b_Q W_K^T x_j + b_Q . b_K
        var xq = 0, kx = 0;
        for (a = 0; a < d; a++) { xq += xi[a] * h.WQ[a * dk + t]; kx += h.WK[a * dk + t] * xj[a]; }
        if (bk) { s1 += xq * bk[t]; }
        if (bq) { s2 += bq[t] * kx; }
        if (bq && bk) { s3 += bq[t] * bk[t]; }
      }
      e.bias_contribution = s1 + s2 + s3;
    }
    if (comp !== null && allow[j]) {
      var r = comp, kr = vec(h.K, r, h.dk), rn = norm(kr), rc = cosine(q, kr, e.query_norm, rn);
      var c = { rival: r, rival_weight: wt(h, i, r), rival_score: scores[r],
        rival_raw_score: row[r], rival_bias: bias(h, i, r), rival_key_norm: rn,
        rival_cosine: rc, raw_gap: row[j] - row[r], score_gap: scores[j] - scores[r] };
      c.bias_gap = bias(h, i, j) - bias(h, i, r);
      c.weight_ratio = Math.exp(c.score_gap);
      c.length = e.query_norm * (e.key_norm - rn) * (e.cosine + rc) / 2;
      c.angle = e.query_norm * (e.cosine - rc) * (e.key_norm + rn) / 2;
      c.dims = []; for (l = 0; l < h.dk; l++) { c.dims.push(q[l] * (k[l] - kr[l])); }
      e.contrast = c;
    }
    return e;
  }

  // ---- drawing helpers ----------------------------------------------------------------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function svgEl(tag, attrs) {
    var e = document.createElementNS(svgNS, tag);
    Object.keys(attrs || {}).forEach(function (a) { e.setAttribute(a, attrs[a]); });
    return e;
  }
  function tip(node, text) { var t = svgEl("title"); t.textContent = text; node.appendChild(t); return node; }
  function full(x) { return x.toPrecision(17); }
  function num(x) {
    if (x === null || x === undefined) { return "\u2013"; }
    if (!isFinite(x)) { return String(x); }
    return String(+x.toPrecision(4));
  }
  // A token as one short line: newlines and tabs made visible, long ones cut (full text in the tooltip)
  function disp(tok, max) {
    var s = tok.replace(/\r\n|\r|\n/g, "\u21b5").replace(/\t/g, "\u21e5");
    max = max || 14;
    return s.length > max ? s.slice(0, max - 1) + "\u2026" : s;
  }
  // A narrative's paragraphs wrap at 88 columns, continuation lines indented by two
  // spaces; the page joins them so that the browser reflows each paragraph to its width.
  function paragraphs(text) { return text.replace(/\n  /g, " "); }

  function quoted(tok) { return "'" + tok + "'"; }
  function shade(w) {
    return "rgb(" + Math.round(255 - 200 * w) + "," + Math.round(255 - 120 * w) + ",255)";
  }
  function where() {
    var L = layer(), h = L.heads[state.head];
    return L.label ? L.label + ", " + h.label : h.label;
  }

  // ---- the model view: layers x heads -------------------------------------------------
  function drawGrid(box) {
    box.textContent = "";
    var total = 0;
    data.layers.forEach(function (L) { total += L.heads.length; });
    if (total < 2) { return; }
    var many = data.layers.length > 1;
    box.appendChild(el("h2", "", many ? "Model view: every layer \u00d7 head (click or Enter to open one)" :
      "Heads (click or Enter to open one)"));
    var scroll = el("div", "afs-scroll"), table = el("table", "afs-grid");
    var tr = el("tr");
    tr.appendChild(el("th", "", many ? "layer \u2193 head \u2192" : ""));
    data.layers[0].heads.forEach(function (h) { tr.appendChild(el("th", "", h.head === null ? "" : String(h.head))); });
    table.appendChild(tr);
    data.layers.forEach(function (L, li) {
      var r = el("tr");
      r.appendChild(el("th", "", L.label || "head"));
      L.heads.forEach(function (h, hi) {
        prep(h);
        var td = el("td"), b = el("button", "afs-thumb");
        b.type = "button";
        var name = (L.label ? L.label + ", " : "") + h.label;
        b.setAttribute("aria-label", name);
        b.title = name;
        b.setAttribute("data-layer", li); b.setAttribute("data-head", hi);
        if (li === state.layer && hi === state.head) { b.className += " afs-on"; b.setAttribute("aria-pressed", "true"); }
        var c = document.createElement("canvas");
        c.width = m; c.height = n;
        var g = c.getContext("2d");
        for (var i = 0; i < n; i++) {
          for (var j = 0; j < m; j++) {
            g.fillStyle = ok(h, i, j) ? "rgba(20,60,140," + wt(h, i, j) + ")" : "#ddd";
            g.fillRect(j, i, 1, 1);
          }
        }
        b.appendChild(c);
        b.addEventListener("click", function () { openHead(li, hi); });
        td.appendChild(b); r.appendChild(td);
      });
      table.appendChild(r);
    });
    scroll.appendChild(table);
    box.appendChild(scroll);
  }
  function openHead(li, hi) {
    state.layer = li; state.head = hi; state.query = null; state.key = null;
    render();
    if (headTitle.scrollIntoView) { headTitle.scrollIntoView({ block: "start" }); }
  }

  // ---- head view and matrix ----------------------------------------------------------
  function drawLines(box) {
    box.textContent = "";
    var h = cur(), longest = 0;
    QT.concat(KT).forEach(function (t) { longest = Math.max(longest, disp(t).length); });
    var pad = 8 * longest + 12, gap = 110, rowH = 24, top = 14;
    var svg = svgEl("svg", { width: 2 * pad + gap + 20, height: top + rowH * Math.max(n, m), role: "img",
      "aria-label": "head view of " + where() });
    for (var i = 0; i < n; i++) {
      for (var j = 0; j < m; j++) {
        var w = wt(h, i, j);
        if (!(w > 0)) { continue; }
        var focus = state.hover !== null ? state.hover : state.query;
        var show = focus === null || focus === i;
        var line = svgEl("line", { x1: pad + 10, y1: top + rowH * i, x2: pad + 10 + gap, y2: top + rowH * j,
          stroke: state.query === i && state.key === j ? "#d69e2e" : "#2b6cb0", "stroke-width": 3,
          "stroke-opacity": show ? w : 0 });
        tip(line, quoted(QT[i]) + " \u2192 " + quoted(KT[j]) + ": weight " + num(w));
        line.addEventListener("click", pick.bind(null, i, j));
        svg.appendChild(line);
      }
    }
    function label(x, y, tok, anchor, i) {
      var t = svgEl("text", { x: x, y: y + 5, "text-anchor": anchor });
      t.textContent = disp(tok);
      tip(t, tok);
      if (i !== null) {
        t.addEventListener("click", function () { showQuery(i); });
        t.addEventListener("mouseenter", function () { if (state.hover !== i) { state.hover = i; drawLines(box); } });
      }
      svg.appendChild(t);
    }
    svg.addEventListener("mouseleave", function () {
      if (state.hover !== null) { state.hover = null; drawLines(box); }
    });
    QT.forEach(function (t, i) { label(pad, top + rowH * i, t, "end", i); });
    KT.forEach(function (t, j) { label(pad + 20 + gap, top + rowH * j, t, "start", null); });
    box.appendChild(svg);
  }

  function drawMatrix(box) {
    box.textContent = "";
    var h = cur(), table = el("table", "afs-matrix"), tr = el("tr");
    tr.appendChild(el("th", "", "query \u2193 key \u2192"));
    KT.forEach(function (tok) { var th = el("th", "", disp(tok, 10)); th.title = tok; tr.appendChild(th); });
    table.appendChild(tr);
    for (var i = 0; i < n; i++) {
      var r = el("tr"), th = el("th", "", disp(QT[i], 12));
      th.title = QT[i];
      r.appendChild(th);
      for (var j = 0; j < m; j++) {
        var masked = !ok(h, i, j), w = wt(h, i, j);
        var td = el("td", masked ? "afs-masked" : "", masked ? "masked" : w.toFixed(3));
        if (!masked) { td.style.background = shade(w); }
        td.tabIndex = 0;
        td.setAttribute("data-q", i); td.setAttribute("data-k", j);
        td.title = quoted(QT[i]) + " \u2192 " + quoted(KT[j]) + (masked ? ": masked, weight 0" : ": weight " + num(w));
        td.addEventListener("click", pick.bind(null, i, j));
        td.addEventListener("keydown", (function (a, b) {
          return function (ev) {
            if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); pick(a, b); }
          };
        })(i, j));
        r.appendChild(td);
      }
      table.appendChild(r);
    }
    box.appendChild(table);
  }
  function markPicked() {
    matrix.querySelectorAll("td").forEach(function (td) {
      var on = +td.getAttribute("data-q") === state.query && +td.getAttribute("data-k") === state.key;
      td.classList.toggle("afs-picked", on);
    });
  }

  // ---- the explanation: numbers, neuron view, contrast ----------------------------------
  function numbers(rows) {  // rows: [field, label, value]; each value in data-value, full precision
    var t = el("table", "afs-numbers");
    rows.forEach(function (r) {
      if (r[2] === undefined) { return; }
      var tr = el("tr"); tr.setAttribute("data-field", r[0]);
      tr.appendChild(el("th", "", r[1]));
      var td = el("td", "", typeof r[2] === "number" ? num(r[2]) : String(r[2]));
      if (typeof r[2] === "number") { td.setAttribute("data-value", full(r[2])); }
      tr.appendChild(td); t.appendChild(tr);
    });
    return t;
  }
  // Bars of one vector per head dimension (BertViz's neuron view), zero line in the middle
  function dimBars(rows, dk) {
    var bw = Math.max(4, Math.min(14, Math.floor(300 / dk))), rowH = 46, lab = 44;
    var svg = svgEl("svg", { width: lab + bw * dk + 8, height: rows.length * (rowH + 8) + 16, role: "img",
      "aria-label": "neuron view: q, k and q\u2218k per head dimension" });
    rows.forEach(function (r, ri) {
      var y0 = 8 + ri * (rowH + 8) + rowH / 2, big = 0;
      r.values.forEach(function (v) { big = Math.max(big, Math.abs(v)); });
      var t = svgEl("text", { x: 0, y: y0 + 4, "class": "afs-small" }); t.textContent = r.name; svg.appendChild(t);
      svg.appendChild(svgEl("line", { x1: lab, x2: lab + bw * dk, y1: y0, y2: y0, stroke: "#9aa5b1" }));
      var g = svgEl("g", { "data-bars": r.field });
      r.values.forEach(function (v, d) {
        var hgt = big > 0 ? Math.abs(v) / big * (rowH / 2) : 0;
        var rect = svgEl("rect", { x: lab + d * bw, y: v >= 0 ? y0 - hgt : y0, width: bw - 1, height: Math.max(hgt, 0.5),
          fill: v >= 0 ? r.color : "#c05621", "data-value": full(v) });
        tip(rect, r.name + "[" + d + "] = " + num(v));
        g.appendChild(rect);
      });
      svg.appendChild(g);
    });
    return svg;
  }
  // A waterfall: each step starts where the last ended; the last bar is the total from 0
  function waterfall(steps, totalLabel, total, field) {
    var lab = 150, w = 170, val = 64, rowH = 20;
    var svg = svgEl("svg", { width: lab + w + val, height: (steps.length + 1) * rowH + 8, role: "img",
      "aria-label": totalLabel + " as a waterfall", "data-waterfall": field });
    var cum = 0, lo = 0, hi = 0;
    steps.forEach(function (s) { cum += s.value; lo = Math.min(lo, cum, cum - s.value); hi = Math.max(hi, cum, cum - s.value); });
    lo = Math.min(lo, total); hi = Math.max(hi, total);
    var span = hi - lo || 1;
    function X(v) { return lab + (v - lo) / span * w; }
    svg.appendChild(svgEl("line", { x1: X(0), x2: X(0), y1: 2, y2: (steps.length + 1) * rowH + 4, stroke: "#9aa5b1" }));
    cum = 0;
    steps.concat([{ label: totalLabel, value: total, total: true }]).forEach(function (s, k) {
      var a = s.total ? 0 : cum, b = s.total ? total : cum + s.value, y = 4 + k * rowH;
      if (!s.total) { cum = b; }
      var t = svgEl("text", { x: lab - 6, y: y + 13, "text-anchor": "end", "class": "afs-small" });
      t.textContent = disp(s.label, 24); tip(t, s.label); svg.appendChild(t);
      var rect = svgEl("rect", { x: Math.min(X(a), X(b)), y: y + 2, width: Math.max(Math.abs(X(b) - X(a)), 1),
        height: rowH - 6, fill: s.total ? "#1d2430" : (s.value >= 0 ? "#2b6cb0" : "#c05621"),
        "data-value": full(s.value) });
      if (s.total) { rect.setAttribute("data-total", "1"); }
      tip(rect, s.label + ": " + num(s.value));
      svg.appendChild(rect);
      var v = svgEl("text", { x: lab + w + 4, y: y + 13, "class": "afs-small" });
      v.textContent = (s.total || s.value < 0 ? "" : "+") + num(s.value); svg.appendChild(v);
    });
    return svg;
  }
  function top(values, labels, count) {  // the largest |values|, then one step for the rest
    var idx = values.map(function (v, t) { return t; });
    idx.sort(function (a, b) { return Math.abs(values[b]) - Math.abs(values[a]) || a - b; });
    var steps = idx.slice(0, count).map(function (t) { return { label: labels(t), value: values[t] }; });
    if (idx.length > count) {
      var rest = 0;
      idx.slice(count).forEach(function (t) { rest += values[t]; });
      steps.push({ label: "the other " + (idx.length - count), value: rest });
    }
    return steps;
  }
  function sum(values) { var s = 0; values.forEach(function (v) { s += v; }); return s; }

  function brief(h, i, j, e) {
    var q = quoted(QT[i]), k = quoted(KT[j]);
    if (e.masked) { return q + " does not attend to " + k + ": the pair is masked, so its weight is exactly 0."; }
    return q + " attends to " + k + " with weight " + num(e.weight) + " (rank " + e.rank + " of " + e.n_allowed +
      (e.n_allowed === 1 ? " key" : " keys") + "; score " + num(e.score) + ").";
  }

  function pick(i, j) {
    state.query = i; state.key = j;
    markPicked(); drawLines(lines); drawSlider(); drawMap();
    var h = cur(), e = explain(h, i, j);
    explanation.textContent = "";
    explanation.setAttribute("data-pair", i + "," + j + "," + state.head + "," + state.layer);
    explanation.appendChild(el("h3", "", quoted(QT[i]) + " \u2192 " + quoted(KT[j]) + " (" + where() + ")"));
    var text = h.explanations ? paragraphs(h.explanations[i][j]) : brief(h, i, j, e);
    var pre = el("pre", "afs-text", text);
    explanation.appendChild(pre);
    if (!h.explanations && h.call) {
      explanation.appendChild(el("p", "afs-sub", "Why, in words, in Python: " +
        h.call.replace("{i}", i).replace("{j}", j)));
    }
    var rows = [["weight", "weight", e.weight], ["rank", "rank", e.rank], ["n_tied", "keys tied with it", e.n_tied],
      ["n_allowed", "keys allowed", e.n_allowed], ["raw_score", "q \u00b7 k (raw score)", e.raw_score],
      ["scale", "scale", e.scale], ["bias", "bias", e.bias], ["score", "score = raw \u00d7 scale + bias", e.score],
      ["logsumexp", "log-sum-exp of the row", e.logsumexp],
      ["query_norm", "|q|", e.query_norm], ["key_norm", "|k|", e.key_norm], ["cosine", "cos(q, k)", e.cosine],
      ["dims_sum", "sum of q\u2218k over dimensions", e.dims ? sum(e.dims) : undefined],
      ["unscaled_weight", "weight without the scale", e.unscaled_weight],
      ["competitor", "strongest other key", e.competitor === null ? "none" : e.competitor],
      ["competitor_weight", "its weight", e.competitor_weight], ["competitor_score", "its score", e.competitor_score]];
    var grid = el("div", "afs-wrap");
    var left = el("div", "afs-panel");
    left.appendChild(el("h4", "", "The numbers"));
    left.appendChild(numbers(rows));
    grid.appendChild(left);
    if (e.dims) {
      var nv = el("div", "afs-panel");
      nv.appendChild(el("h4", "", "Neuron view: q, k and q\u2218k per head dimension"));
      var sc = el("div", "afs-scroll");
      sc.appendChild(dimBars([{ name: "q", field: "q", values: Array.from(e.q), color: "#2b6cb0" },
        { name: "k", field: "k", values: Array.from(e.k), color: "#2f855a" },
        { name: "q\u2218k", field: "dims", values: e.dims, color: "#6b46c1" }], h.dk));
      nv.appendChild(sc);
      nv.appendChild(el("p", "afs-sub", "The q\u2218k bars sum to the raw score " + num(sum(e.dims)) +
        " = |q| |k| cos = " + num(e.query_norm) + " \u00d7 " + num(e.key_norm) + " \u00d7 " + num(e.cosine) + "."));
      grid.appendChild(nv);
    } else {
      grid.appendChild(el("p", "afs-sub", "q and k are not in this page (too large); the call above gives every number."));
    }
    explanation.appendChild(grid);
    if (e.features) {
      var d = h.d_model, names = data.feature_names;
      var fname = function (a) { return names ? names[a] : "#" + a; };
      var steps = top(e.features, function (t) {
        return fname(Math.floor(t / d)) + " \u00d7 " + fname(t % d);
      }, 8);
      steps.push({ label: "bias terms (b_Q, b_K)", value: e.bias_contribution });
      var fp = el("div", "afs-panel");
      fp.appendChild(el("h4", "", "Why, in the embedding: query feature \u00d7 key feature \u2192 raw score"));
      var fs = el("div", "afs-scroll");
      fs.appendChild(waterfall(steps, "raw score q \u00b7 k", e.raw_score, "features"));
      fp.appendChild(fs);
      fp.appendChild(el("p", "afs-sub", "Each bar is x_i[a] (W_Q W_K\u1d40)[a, b] x_j[b] for a query feature a and a " +
        "key feature b (" + (names ? "named" : "#a: feature a of the embedding") + "): the largest eight, then the " +
        "other pairs summed, then the terms of the projection biases; they sum to the raw score."));
      fp.appendChild(numbers([["features_sum", "sum of the feature pairs", sum(e.features)],
        ["bias_contribution", "bias terms", e.bias_contribution]]));
      explanation.appendChild(fp);
    }
    if (e.contrast) {
      var c = e.contrast, cp = el("div", "afs-panel afs-contrast");
      cp.setAttribute("data-rival", c.rival);
      cp.appendChild(el("h4", "", "Why " + quoted(KT[j]) + " and not " + quoted(KT[c.rival]) +
        (e.rank === 1 ? " (the runner-up)" : " (the top key)")));
      var ws = el("div", "afs-scroll");
      ws.appendChild(waterfall([{ label: "length term", value: c.length },
        { label: "angle term", value: c.angle }], "raw gap q\u00b7(k_j\u2212k_r)",
        c.raw_gap, "length_angle"));
      ws.appendChild(waterfall(top(c.dims, function (t) { return "dimension " + t; }, 6), "raw gap q\u00b7(k_j\u2212k_r)",
        c.raw_gap, "gap_dims"));
      cp.appendChild(ws);
      cp.appendChild(el("p", "afs-sub", "j = " + quoted(KT[j]) + ", r = " + quoted(KT[c.rival]) +
        ". Length term |q|(|k_j|\u2212|k_r|)(cos_j+cos_r)/2, angle term |q|(cos_j\u2212cos_r)(|k_j|+|k_r|)/2: " +
        "they sum to the raw gap, as do the dimensions' q_d(k_jd\u2212k_rd). Score gap = raw gap \u00d7 scale + " +
        "bias gap = " + num(c.score_gap) + ", so w_j / w_r = e^gap = " + num(c.weight_ratio) + "."));
      cp.appendChild(numbers([["rival", "rival key", c.rival], ["rival_weight", "its weight", c.rival_weight],
        ["rival_score", "its score", c.rival_score], ["rival_raw_score", "its q \u00b7 k", c.rival_raw_score],
        ["rival_key_norm", "its |k|", c.rival_key_norm], ["rival_cosine", "its cos", c.rival_cosine],
        ["raw_gap", "raw gap", c.raw_gap], ["length", "length term", c.length], ["angle", "angle term", c.angle],
        ["bias_gap", "bias gap", c.bias_gap], ["score_gap", "score gap = raw gap \u00d7 scale + bias gap", c.score_gap],
        ["weight_ratio", "weight ratio e^gap", c.weight_ratio]]));
      explanation.appendChild(cp);
    }
  }

  function showQuery(i) {
    state.query = i; state.key = null;
    markPicked(); drawLines(lines); drawSlider(); drawMap();
    var h = cur();
    explanation.textContent = "";
    explanation.removeAttribute("data-pair");
    explanation.appendChild(el("h3", "", quoted(QT[i]) + " (" + where() + ")"));
    var text;
    if (h.queries) { text = paragraphs(h.queries[i]); } else {
      var p = [], a = allowRow(h, i);
      for (var j = 0; j < m; j++) { p.push(wt(h, i, j)); }
      var eff = Math.exp(entropy(p));
      text = quoted(QT[i]) + (a.some(Boolean) ? " spreads its attention over about " + num(eff) + " keys (e^entropy)." :
        " attends to nothing: every key is masked.");
      if (h.query_call) { text += "\nWhy, in Python: " + h.query_call.replace("{i}", i); }
    }
    explanation.appendChild(el("pre", "afs-text", text));
  }

  // ---- the scale and temperature slider ------------------------------------------------
  function fmax(h) { return Math.max(4 * h.scale, 1.25); }
  function drawSlider() {
    var h = cur(), i = state.query === null ? 0 : state.query, F = fmax(h);
    if (state.factor === null) { state.factor = h.scale; }
    var factor = state.factor;
    var row = rawRow(h, i), allow = allowRow(h, i), scores = [];
    for (var j = 0; j < m; j++) { scores.push(row[j] * factor + (allow[j] ? bias(h, i, j) : 0)); }
    var p = allow.some(Boolean) ? softmax(scores, allow) : scores.map(function () { return 0; });
    slider.setAttribute("data-factor", full(factor));
    slider.setAttribute("data-query", i);
    sliderHead.textContent = "Scale and temperature, row of " + quoted(QT[i]) + " (" + where() + ")";
    range.max = STEPS; range.value = Math.round(factor / F * STEPS);
    marks.textContent = "";
    [[h.scale, "1/\u221ad_k = " + num(h.scale) + " (the default)"], [1, "no scale (1)"]].forEach(function (mk) {
      if (mk[0] > F) { return; }
      var s = el("span", "afs-mark", "\u25b2 " + mk[1]);
      s.style.left = (100 * mk[0] / F) + "%";
      marks.appendChild(s);
    });
    var top = 0, H = entropy(p);
    p.forEach(function (v) { top = Math.max(top, v); });
    readout.textContent = "";
    readout.appendChild(numbers([["factor", "factor (the scores are q\u00b7k \u00d7 factor + bias)", factor],
      ["times_default", "\u00d7 the default scale", factor / h.scale], ["entropy", "entropy of the row (nats)", H],
      ["effective_keys", "effective keys e^entropy", Math.exp(H)], ["max_weight", "largest weight", top]]));
    var bars = el("div", "afs-bars");
    p.forEach(function (v, j) {
      var line = el("div", "afs-barline");
      var lab = el("span", "afs-barlabel", disp(KT[j], 12)); lab.title = KT[j];
      var bar = el("span", "afs-bar"); bar.style.width = (100 * v) + "%";
      var val = el("span", "afs-barval", allow[j] ? v.toFixed(4) : "masked");
      val.setAttribute("data-key", j); val.setAttribute("data-value", full(v));
      var track = el("span", "afs-track"); track.appendChild(bar);
      line.appendChild(lab); line.appendChild(track); line.appendChild(val);
      bars.appendChild(line);
    });
    readout.appendChild(bars);
  }

  // ---- the joint query-key map -------------------------------------------------------
  function drawMap() {
    var h = cur(), mp = h.map;
    mapBox.textContent = "";
    if (!mp) { return; }
    mapBox.appendChild(el("h2", "", "Joint query\u2013key map (" + where() + ")"));
    var pts = mp.q.concat(mp.k), lo = [Infinity, Infinity], hi = [-Infinity, -Infinity];
    pts.forEach(function (p) { for (var a = 0; a < 2; a++) { lo[a] = Math.min(lo[a], p[a]); hi[a] = Math.max(hi[a], p[a]); } });
    var W = 360, Hh = 280, padX = 50, padY = 20;
    function X(p) { return padX + (hi[0] > lo[0] ? (p[0] - lo[0]) / (hi[0] - lo[0]) : 0.5) * (W - 2 * padX); }
    function Y(p) { return padY + (hi[1] > lo[1] ? (hi[1] - p[1]) / (hi[1] - lo[1]) : 0.5) * (Hh - 2 * padY); }
    var svg = svgEl("svg", { viewBox: "0 0 " + W + " " + Hh, width: W, height: Hh, "class": "afs-map", role: "img",
      "aria-label": "queries and keys of " + where() + " projected together to 2-D" });
    mp.q.forEach(function (p, i) {
      var j = mp.top[i];
      if (j < 0) { return; }
      var on = state.query === i;
      svg.appendChild(tip(svgEl("line", { x1: X(p), y1: Y(p), x2: X(mp.k[j]), y2: Y(mp.k[j]),
        stroke: on ? "#d69e2e" : "#718096", "stroke-width": on ? 2.5 : 1, "stroke-opacity": on || state.query === null ? 0.9 : 0.3 }),
        quoted(QT[i]) + " \u2192 top key " + quoted(KT[j]) + ", weight " + num(wt(h, i, j))));
    });
    mp.k.forEach(function (p, j) {
      svg.appendChild(tip(svgEl("rect", { x: X(p) - 4, y: Y(p) - 4, width: 8, height: 8, fill: "#fff", stroke: "#c05621",
        "stroke-width": 2 }), "key " + quoted(KT[j])));
      var t = svgEl("text", { x: X(p) + 6, y: Y(p) + 12, "class": "afs-small", fill: "#c05621" });
      t.textContent = disp(KT[j], 10); svg.appendChild(t);
    });
    mp.q.forEach(function (p, i) {
      var c = svgEl("circle", { cx: X(p), cy: Y(p), r: state.query === i ? 6 : 4.5, fill: "#2b6cb0" });
      c.addEventListener("click", function () { showQuery(i); });
      svg.appendChild(tip(c, "query " + quoted(QT[i])));
      var t = svgEl("text", { x: X(p) + 6, y: Y(p) - 5, "class": "afs-small", fill: "#2b6cb0" });
      t.textContent = disp(QT[i], 10); svg.appendChild(t);
    });
    var sc = el("div", "afs-scroll"); sc.appendChild(svg); mapBox.appendChild(sc);
    mapBox.appendChild(el("p", "afs-sub", "\u25cf query   \u25a1 key   \u2014 each query to its top key."));
    var v = mp.explained;
    var note = el("p", "afs-note");
    note.setAttribute("data-explained", full(v[0] + v[1]));
    note.textContent = "PCA (NumPy's SVD) of the " + (n + m) + " vectors of dimension " + h.dk +
      " together. The two axes keep " + (100 * v[0]).toFixed(1) + "% + " + (100 * v[1]).toFixed(1) + "% = " +
      (100 * (v[0] + v[1])).toFixed(1) + "% of their variance; the rest is lost. Before projecting, the queries " +
      "were multiplied by a = " + num(mp.a) + " and the keys by 1/a (no dot product changes), and the keys were shifted " +
      "onto the queries' centre (that adds the same q\u00b7c to every score of a row, so no weight changes). Then " +
      "|q \u2212 k|\u00b2 = |q|\u00b2 + |k|\u00b2 \u2212 2 q\u00b7k: near means a large dot product, up to the keys' norms. " +
      "A distance here is not a weight: dot products are not distances, and the projection drops dimensions. " +
      "The weights are in the matrix.";
    mapBox.appendChild(note);
  }

  // ---- the page ----------------------------------------------------------------------
  var gridBox = el("div", "afs-gridbox");
  var headTitle = el("h2", "afs-where");
  var wrap = el("div", "afs-wrap");
  var left = el("div", "afs-panel"), right = el("div", "afs-panel");
  var leftHead = el("h3"), rightHead = el("h3");
  left.appendChild(leftHead);
  var lines = el("div", "afs-scroll");
  left.appendChild(lines);
  right.appendChild(rightHead);
  var matrix = el("div", "afs-scroll");
  right.appendChild(matrix);
  wrap.appendChild(left); wrap.appendChild(right);
  var explanation = el("div", "afs-explanation");
  explanation.appendChild(el("pre", "afs-text", "Click a cell of the matrix, a line or a query token to see why."));
  var slider = el("div", "afs-slider"), sliderHead = el("h2");
  var range = el("input"); range.type = "range"; range.min = 0; range.step = 1;
  range.setAttribute("aria-label", "factor on the dot products");
  var marks = el("div", "afs-marks"), readout = el("div");
  var buttons = el("div", "afs-heads");
  [["1/\u221ad_k (default)", function (h) { return h.scale; }], ["no scale (1)", function () { return 1; }],
   ["0 (uniform)", function () { return 0; }]].forEach(function (b) {
    var btn = el("button", "", b[0]); btn.type = "button";
    btn.addEventListener("click", function () {
      state.factor = b[1](cur()); drawSlider();
    });
    buttons.appendChild(btn);
  });
  range.addEventListener("input", function () { state.factor = fmax(cur()) * (+range.value) / STEPS; drawSlider(); });
  slider.appendChild(sliderHead);
  slider.appendChild(el("p", "afs-sub", "The slider multiplies the dot products q\u00b7k by a factor from 0 to " +
    "4\u00d7 the default scale (at least to 1.25), and the softmax is computed again here: watch the row go from " +
    "uniform (factor 0) to one-hot."));
  var track = el("div", "afs-rangebox"); track.appendChild(range); track.appendChild(marks);
  slider.appendChild(track); slider.appendChild(buttons); slider.appendChild(readout);
  var mapBox = el("div", "afs-mapbox");
  [gridBox, headTitle, wrap].forEach(function (x) { root.appendChild(x); });
  root.appendChild(el("h2", "", "Explanation"));
  root.appendChild(explanation);
  root.appendChild(slider);
  root.appendChild(mapBox);

  function render() {
    prepLayer();
    var h = cur();
    state.factor = null;
    headTitle.textContent = where() + ": " + n + " queries \u00d7 " + m + " keys, d_k = " + h.dk;
    leftHead.textContent = "Head view, " + where() + " (click a line or a query)";
    rightHead.textContent = "Weights, " + where() + " (click a cell, or Tab to it and press Enter)";
    drawGrid(gridBox); drawLines(lines); drawMatrix(matrix); drawSlider(); drawMap();
    explanation.textContent = "";
    explanation.appendChild(el("pre", "afs-text", "Click a cell of the matrix, a line or a query token to see why."));
  }
  render();
  // A link may name a pair: page.html#pick=QUERY,KEY[,HEAD[,LAYER]]
  var linked = /pick=(\d+),(\d+)(?:,(\d+))?(?:,(\d+))?/.exec(window.location.hash);
  if (linked && +linked[1] < n && +linked[2] < m) {
    var li = linked[4] !== undefined && +linked[4] < data.layers.length ? +linked[4] : state.layer;
    var hi = linked[3] !== undefined && +linked[3] < data.layers[li].heads.length ? +linked[3] : state.head;
    if (li !== state.layer || hi !== state.head) { state.layer = li; state.head = hi; render(); }
    pick(+linked[1], +linked[2]);
  }
  root.setAttribute("data-rendered", "ok");
})();
"""


# --------------------------------------------------------------------------- the joint map


@dataclass(frozen=True)
class JointMap:
    r"""Queries and keys of one head projected together to 2-D (see :func:`joint_map`).

    Attributes
    ----------
    queries : (n, 2) ndarray
        The queries' coordinates on the two principal axes.
    keys : (m, 2) ndarray
        The keys' coordinates on the same axes.
    explained : (2,) ndarray
        The fraction of the variance of the ``n + m`` (rescaled, shifted) vectors that
        each axis keeps; ``1 - explained.sum()`` is what the projection loses.
    query_scale : float
        :math:`a`: queries were multiplied by :math:`a`, keys by :math:`1/a`, so that
        their mean norms agree (no dot product changes).
    key_shift : (d_k,) ndarray
        :math:`c`, added to every (rescaled) key so that the keys' centre is the
        queries' centre (every score of a row gains the same :math:`a\,q_i \cdot c`,
        so no weight changes).
    top_keys : (n,) ndarray of int
        Each query's most attended key (the first of ties; -1 when every key is masked).
    """

    queries: Float64Array
    keys: Float64Array
    explained: Float64Array
    query_scale: float
    key_shift: Float64Array
    top_keys: NDArray[np.int64]


def joint_map(
    result: Attention | ProjectedAttention,
    /,
    *,
    head: int | None = None,
    batch: int | tuple[int, ...] | None = None,
) -> JointMap:
    r"""Project one head's queries and keys together to 2-D (PCA), keeping the weights.

    The joint embedding of :cite:t:`yeh2023attentionviz`: one picture where a query
    lies near the keys it attends to. Two exact invariances of the softmax make
    distance mean attention as far as it can: the queries are multiplied by
    :math:`a = \sqrt{\overline{\lVert k\rVert} / \overline{\lVert q\rVert}}` and the
    keys by :math:`1/a` (every dot product is unchanged), then every key is shifted by
    :math:`c = \bar q' - \bar k'` onto the queries' centre (every score of a row gains
    :math:`q_i' \cdot c`, the same for all its keys, so no weight changes). The
    :math:`n + m` vectors are then centred and projected on their two principal axes.

    Parameters
    ----------
    result : Attention or ProjectedAttention
        An attention result.
    head : int, optional
        The head; needed when the result has more than one.
    batch : int or tuple of int, optional
        Which sequence of a batched result.

    Returns
    -------
    JointMap
        The coordinates, the explained variance of each axis, ``a``, ``c`` and each
        query's top key.

    Raises
    ------
    TypeError, ValueError, IndexError
        As :meth:`~attention_from_scratch.self_attention.ProjectedAttention.head_view`.

    See Also
    --------
    to_html : draws the map of each head.

    Notes
    -----
    In code, ``P = [a q; k / a + c]``, ``U, S, Vt = np.linalg.svd(P - P.mean(0))``,
    coordinates ``(P - P.mean(0)) @ Vt[:2].T``, explained variance ``S**2 / (S**2).sum()``.
    After the rescaling and the shift,

    .. math::

       \lVert q_i' - k_j' \rVert^2 = \lVert q_i' \rVert^2 + \lVert k_j' \rVert^2
                                   - 2\, q_i' \cdot k_j' ,

    so within a row a nearer key has a larger dot product *up to its norm*; the
    projection then drops every dimension but two. A distance on the map is therefore
    never a weight: read the weights beside it. The SVD of a centred matrix is the
    numerically stable way to a PCA (no covariance matrix is formed, whose condition
    number would be the square) :cite:p:`yeh2023attentionviz`. Each axis' sign is fixed
    so that its largest loading is positive, so the picture is reproducible.

    References
    ----------
    :cite:t:`yeh2023attentionviz`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> from attention_from_scratch.self_attention import self_attention
    >>> from attention_from_scratch.view import joint_map
    >>> ex = fluffy_blue_creature()
    >>> jm = joint_map(self_attention(ex.x, ex.params))
    >>> print(jm.queries.shape, jm.keys.shape, round(float(jm.explained.sum()), 4))
    (3, 2) (3, 2) 1.0
    >>> print([ex.tokens[j] for j in jm.top_keys])
    ['fluffy', 'fluffy', 'fluffy']
    """
    result_obj: object = result  # typed, but callers may pass anything
    if not isinstance(result_obj, Attention | ProjectedAttention):
        msg = (
            "result must come from scaled_dot_product_attention, self_attention or "
            f"multi_head_attention, got {type(result_obj).__name__}"
        )
        raise TypeError(msg)
    view = result.head_view(batch=batch, head=head)
    q = np.asarray(view.q, dtype=np.float64)  # (n, d_k)
    k = np.asarray(view.k, dtype=np.float64)  # (m, d_k)
    mean_q = float(l2_norm(q, axis=1).mean())  # the mean lengths, overflow-safe
    mean_k = float(l2_norm(k, axis=1).mean())
    a = math.sqrt(mean_k / mean_q) if mean_q > 0 and mean_k > 0 else 1.0
    qs, ks = q * a, k / a
    shift = qs.mean(axis=0) - ks.mean(axis=0)  # (d_k,)
    points = np.concatenate([qs, ks + shift])  # (n + m, d_k)
    centred = points - points.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = np.zeros((2, q.shape[1]))
    axes[: min(2, vt.shape[0])] = vt[:2]
    for axis in range(2):  # a reproducible sign: the largest loading is positive
        if axes[axis, np.argmax(np.abs(axes[axis]))] < 0:
            axes[axis] = -axes[axis]
    coords = centred @ axes.T  # (n + m, 2)
    power = s**2
    total = float(power.sum())
    explained = np.zeros(2)
    if total > 0:
        top = power[:2] / total
        explained[: top.shape[0]] = top
    allowed = np.asarray(view.allowed)
    weights = np.where(allowed, np.asarray(view.weights, dtype=np.float64), -np.inf)
    tops = np.where(allowed.any(axis=1), np.argmax(weights, axis=1), -1).astype(np.int64)
    n = q.shape[0]
    return JointMap(
        queries=read_only(coords[:n]),
        keys=read_only(coords[n:]),
        explained=read_only(explained),
        query_scale=a,
        key_shift=read_only(shift),
        top_keys=read_only(tops),
    )


# --------------------------------------------------------------------------- the page's data


def _escape(text: str) -> str:
    """``html.escape``: the module is imported when a page is made, not with the package.

    (``html`` brings ``html.entities``, a table of every named character, a few
    milliseconds of ``import attention_from_scratch`` that most uses never need.)
    """
    import html  # noqa: PLC0415 - only for a page

    return html.escape(text)


def _safe_json(payload: Any) -> str:
    """JSON that cannot close its ``<script>`` element or start markup."""
    import json  # noqa: PLC0415 - only for a page (json, html, base64: not at import)

    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _b64(arr: ArrayLike) -> str:
    """The float64 values of ``arr`` (C order, little-endian) in base64: exact and compact."""
    import base64  # noqa: PLC0415 - only for a page

    raw = np.ascontiguousarray(np.asarray(arr, dtype="<f8")).tobytes()
    return base64.b64encode(raw).decode("ascii")


def _head_ids(result: Attention | ProjectedAttention) -> list[int | None]:
    """The heads a view can show: ``0 .. h-1``, or ``[None]`` for a result without heads."""
    return result.head_ids() if isinstance(result, ProjectedAttention) else [None]


def _round(x: float) -> float:
    return float(f"{x:.5g}")


def _head_entry(
    result: Attention | ProjectedAttention,
    head: int | None,
    batch: int | tuple[int, ...] | None,
    *,
    vectors: bool,
    features: bool,
) -> dict[str, Any]:
    """One head's exact arrays (base64 float64) and its joint map, for the page's script."""
    view = result.head_view(batch=batch, head=head)
    allowed = np.asarray(view.allowed)
    entry: dict[str, Any] = {
        "label": "single head" if head is None else f"head {head}",
        "head": head,
        "dk": int(view.q.shape[-1]),
        "scale": float(view.scale),
        "weights": _b64(view.weights),
    }
    if not allowed.all():
        entry["allowed"] = "".join("1" if a else "0" for a in allowed.ravel())
    bias = np.where(allowed, np.asarray(view.bias, dtype=np.float64), 0.0)
    if np.any(bias != 0):
        entry["bias"] = _b64(bias)
    if vectors:
        entry["q"], entry["k"] = _b64(view.q), _b64(view.k)
        jm = joint_map(result, head=head, batch=batch)
        entry["map"] = {
            "q": [[_round(x), _round(y)] for x, y in jm.queries.tolist()],
            "k": [[_round(x), _round(y)] for x, y in jm.keys.tolist()],
            "top": jm.top_keys.tolist(),
            "explained": jm.explained.tolist(),
            "a": jm.query_scale,
        }
    else:  # the dot products alone: the slider and the weights, not the neuron view
        q = np.asarray(view.q, dtype=np.float64)
        k = np.asarray(view.k, dtype=np.float64)
        entry["raw"] = _b64(q @ k.T)
    if features and view.w_q is not None and view.w_k is not None:
        entry["d_model"] = int(view.w_q.shape[0])
        entry["w_q"], entry["w_k"] = _b64(view.w_q), _b64(view.w_k)
        if view.b_q is not None:
            entry["b_q"] = _b64(view.b_q)
        if view.b_k is not None:
            entry["b_k"] = _b64(view.b_k)
    return entry


def _feature_values(result: Attention | ProjectedAttention, heads: int) -> int:
    """How many values the feature pairs of ``heads`` heads need (0 when unknown)."""
    if not isinstance(result, ProjectedAttention):
        return 0
    d_model, d_k = int(result.x.shape[-1]), int(result.q.shape[-1])
    n, m = (int(size) for size in result.weights.shape[-2:])
    return heads * 2 * d_model * d_k + (n + m) * d_model


def _layer_entry(
    result: Attention | ProjectedAttention,
    label: str | None,
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None,
    batch: int | tuple[int, ...] | None,
    feature_names: Sequence[str] | None,
    *,
    heads: Sequence[int | None],
    narratives: bool,
    vectors: bool,
    features: bool,
) -> tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]]:
    """A layer of the page: its heads, the embeddings when ``features``, the narratives."""
    out: dict[str, Any] = {"label": label, "heads": []}
    query_tokens: tuple[str, ...] = ()
    key_tokens: tuple[str, ...] = ()
    for head in heads:
        first = explain_query(result, 0, batch=batch, head=head, tokens=tokens)
        query_tokens, key_tokens = first.query_tokens, first.key_tokens
        entry = _head_entry(result, head, batch, vectors=vectors, features=features)
        head_arg = "" if head is None else f", head={head}"
        if narratives:
            entry["queries"] = [str(first)] + [
                str(explain_query(result, i, batch=batch, head=head, tokens=tokens))
                for i in range(1, len(query_tokens))
            ]
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
        else:  # the calls that print the narratives
            entry["call"] = f"print(explain_score(result, {{i}}, {{j}}{head_arg}))"
            entry["query_call"] = f"print(explain_query(result, {{i}}{head_arg}))"
        out["heads"].append(entry)
    if features and isinstance(result, ProjectedAttention):
        view = result.head_view(batch=batch, head=heads[0])
        if view.x is not None and view.source is not None:
            out["d_model"] = int(view.x.shape[-1])
            out["x"] = _b64(view.x)
            if result.context is not None:
                out["xs"] = _b64(view.source)
    return out, query_tokens, key_tokens


def _payload(
    results: Sequence[Attention | ProjectedAttention],
    labels: Sequence[str | None],
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None,
    batch: int | tuple[int, ...] | None,
    feature_names: Sequence[str] | None,
    *,
    heads: Sequence[int | None] | None,
    narratives: bool | None,
    vectors: bool = True,
    select: tuple[int, int] = (0, 0),
    feature_budget: int = PAGE_MAX_FEATURE_VALUES,
) -> dict[str, Any]:
    """The page's data: per layer and head, the exact arrays; narratives when asked.

    The embeddings and projection weights (for the feature pairs) go in while they are
    at most ``feature_budget`` values; ``vectors=False`` holds the dot products instead
    of the queries and keys.
    """
    shown = [_head_ids(r) if heads is None else list(heads) for r in results]
    pairs = sum(
        len(h) * math.prod(r.weights.shape[-2:]) for h, r in zip(shown, results, strict=True)
    )
    embed = pairs <= PAGE_MAX_PAIRS if narratives is None else narratives
    values = sum(_feature_values(r, len(h)) for h, r in zip(shown, results, strict=True))
    features = vectors and 0 < values <= feature_budget
    layers = []
    query_tokens: tuple[str, ...] = ()
    key_tokens: tuple[str, ...] = ()
    for result, label, layer_heads in zip(results, labels, shown, strict=True):
        entry, query_tokens, key_tokens = _layer_entry(
            result,
            label,
            tokens,
            batch,
            feature_names,
            heads=layer_heads,
            narratives=embed,
            vectors=vectors,
            features=features,
        )
        layers.append(entry)
    names = None
    if features and feature_names is not None:
        names = [str(name) for name in feature_names]
    return {
        "query_tokens": list(query_tokens),
        "key_tokens": list(key_tokens),
        "feature_names": names,
        "select": list(select),
        "layers": layers,
    }


# --------------------------------------------------------------------------- the page


def _results(
    result: object,
) -> tuple[list[Attention | ProjectedAttention], list[str | None]]:
    """The results of a page and their layer labels: one result, or a list of layers."""
    if isinstance(result, Attention | ProjectedAttention):
        return [result], [None]
    if isinstance(result, Sequence) and not isinstance(result, str | bytes):
        items = list(result)
        if not items:
            msg = (
                "result must be an attention result or a non-empty list of them, got an empty list"
            )
            raise ValueError(msg)
        for index, item in enumerate(items):
            if not isinstance(item, Attention | ProjectedAttention):
                msg = (
                    f"result[{index}] must be an attention result (from self_attention or "
                    f"multi_head_attention), got {type(item).__name__}"
                )
                raise TypeError(msg)
        return items, [f"layer {index}" for index in range(len(items))]
    msg = (
        "result must come from scaled_dot_product_attention, self_attention or "
        f"multi_head_attention (or be a list of them), got {type(result).__name__}"
    )
    raise TypeError(msg)


def to_html(
    result: Attention | ProjectedAttention | Sequence[Attention | ProjectedAttention],
    /,
    *,
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None = None,
    title: str | None = None,
    batch: int | tuple[int, ...] | None = None,
    feature_names: Sequence[str] | None = None,
    heads: Sequence[int] | None = None,
    fragment: bool = False,
    narratives: bool | None = None,
    select: tuple[int, int] | None = None,
) -> str:
    r"""One self-contained HTML page showing ``result``, with explanations on click.

    Parameters
    ----------
    result : Attention, ProjectedAttention, or sequence of ProjectedAttention
        From :func:`~attention_from_scratch.self_attention.scaled_dot_product_attention`,
        :func:`~attention_from_scratch.self_attention.self_attention` or
        :func:`~attention_from_scratch.self_attention.multi_head_attention`. A sequence
        (the layers of an encoder, on the same tokens) gives the model view: a grid of
        layers x heads.
    tokens : sequence of str, or a pair of them, optional
        Token labels (a pair ``(query_tokens, key_tokens)`` for cross-attention).
    title : str, optional
        The page title; default "Attention".
    batch : int or tuple of int, optional
        Which sequence of a batched result to show.
    feature_names : sequence of str, optional
        Names of the embedding features, used by the explanations.
    heads : sequence of int, optional
        The heads to show (default: all), in every layer.
    fragment : bool, optional
        Return only the ``<div>`` with its style and script (for Jupyter), not a page.
    narratives : bool, optional
        Embed the narrative of every (head, query, key) pair (default: when there are
        at most :data:`PAGE_MAX_PAIRS` of them). Without them a click shows every
        number, computed by the page, and the call that prints the narrative.
    select : (int, int), optional
        ``(layer, head)`` to open first (default: the first layer and head shown);
        ``layer`` is 0 for a single result.

    Returns
    -------
    str
        The HTML text. It loads nothing from the network.

    Raises
    ------
    TypeError, ValueError, IndexError
        As :func:`~attention_from_scratch.explain.explain_score` (an unknown head is an
        :class:`IndexError`); ``ValueError`` also if ``heads`` or the sequence of
        results is empty, or ``select`` names a layer or head not shown; ``TypeError``
        if ``title`` is not a string or an item of the sequence is not a result.

    See Also
    --------
    notebook_html, joint_map, attention_from_scratch.explain.explain_score,
    attention_from_scratch.explain.heatmap

    Notes
    -----
    In code, ``base64`` of the float64 bytes of each head's ``q``, ``k`` and
    ``weights`` (exact: JavaScript numbers are float64), and a script that computes
    every number of :func:`~attention_from_scratch.explain.explain_score` from them
    with the same formulas: :math:`q \cdot k` as a sum over the head's dimensions, the
    norms scaled by a power of two (no overflow), the softmax and log-sum-exp with the
    row's largest score subtracted first (every exponent :math:`\le 0`). They agree
    with the package's to rounding (the order of a sum may differ: about
    :math:`10^{-15}` relative). The page is the head view and model view of BertViz
    :cite:p:`vig2019multiscale` with a reason attached to every line and cell, the
    scale slider of Transformer Explainer :cite:p:`cho2024transformer` acting on the
    attention's own scale, and the joint query--key map of AttentionViz
    :cite:p:`yeh2023attentionviz`. All text enters the page through ``textContent``,
    so tokens are shown literally and never interpreted as HTML.

    References
    ----------
    :cite:t:`vig2019multiscale`; :cite:t:`cho2024transformer`;
    :cite:t:`yeh2023attentionviz`.

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
    results, labels = _results(result)
    if heads is not None and not list(heads):
        msg = "heads must name at least one head, got an empty sequence"
        raise ValueError(msg)
    shown: list[int | None] = _head_ids(results[0]) if heads is None else list(heads)
    start = _selected(select, len(results), shown)
    payload = _payload(
        results,
        labels,
        tokens,
        batch,
        feature_names,
        heads=None if heads is None else shown,
        narratives=narratives,
        select=start,
    )
    return _page(
        payload,
        title=title,
        fragment=fragment,
        total_heads=len(_head_ids(results[0])),
    )


def _selected(select: object, n_layers: int, shown: list[int | None]) -> tuple[int, int]:
    """``select=(layer, head)`` as indices into the page's layers and shown heads."""
    if select is None:
        return (0, 0)
    if (
        not isinstance(select, tuple)
        or len(select) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in select)
    ):
        msg = f"select must be a pair (layer, head) of ints, got {select!r}"
        raise TypeError(msg)
    layer, head = select
    if not 0 <= layer < n_layers:
        msg = f"select names layer {layer}, but the page has {n_layers} (0 .. {n_layers - 1})"
        raise ValueError(msg)
    ids = [0 if h is None else h for h in shown]
    if head not in ids:
        msg = f"select names head {head}, which is not shown (heads shown: {ids})"
        raise ValueError(msg)
    return (layer, ids.index(head))


def _page(
    payload: dict[str, Any], *, title: str | None, fragment: bool, total_heads: int, note: str = ""
) -> str:
    """The view's HTML around ``payload``: a page, or its ``<div>`` when ``fragment``."""
    heading = _escape(title if title is not None else "Attention")
    layers = payload["layers"]
    labels = [head["label"] for head in layers[0]["heads"]]
    subtitle = f"{len(payload['query_tokens'])} queries x {len(payload['key_tokens'])} keys"
    if len(layers) > 1:
        subtitle += f", {len(layers)} layers"
    if len(labels) < total_heads:
        shown = ", ".join(labels) if len(labels) <= 3 else str(len(labels))
        subtitle += f", {shown} of {total_heads} heads shown"
    elif total_heads > 1:
        subtitle += f", {total_heads} heads" + (" each" if len(layers) > 1 else "")
    body = (
        f'<div class="afs-view"><style>{_CSS}</style>'
        f'<h1>{heading}</h1><div class="afs-sub">{_escape(subtitle)}</div>{note}'
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
_NOTEBOOK_MAX_VECTOR_VALUES = 65536  # q and k values; beyond, the dot products alone
_NOTEBOOK_MAX_FEATURE_VALUES = 4096  # embeddings and projection weights: small examples


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
      narrative, as :func:`to_html` does; beyond, a click on a pair shows its numbers
      and the ``explain_score`` call that prints its narrative (the narratives are most
      of the cost of a page: about 1 ms each);
    * the queries and keys only while they are at most 65536 values (else the dot
      products, for the weights and the slider), and the embeddings and projection
      weights (the feature pairs) only while they are at most 4096 values.

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
    vectors = len(shown) * (n + m) * result.q.shape[-1] <= _NOTEBOOK_MAX_VECTOR_VALUES
    payload = _payload(
        [result],
        [None],
        None,
        None,
        None,
        heads=shown,
        narratives=pairs,
        vectors=vectors,
        feature_budget=_NOTEBOOK_MAX_FEATURE_VALUES,
    )
    note = ""
    if len(shown) < n_heads:
        rest = f"to_html(result, heads=range({len(shown)}, {n_heads}))"
        note = (
            f'<p class="afs-sub">Heads 0 to {len(shown) - 1} of {n_heads} are shown here; '
            f"the others: <code>{_escape(rest)}</code> (a page; "
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
        f"<li>{_escape(what)}: <code>{_escape(call)}</code></li>" for what, call in calls
    )
    return (
        f'<div class="afs-view"><style>{_BASE_CSS}</style><h1>Attention</h1>'
        f'<div class="afs-sub">{n} queries x {m} keys, {heads}: no head or row is shown '
        f"here, because the notebook view draws at most {NOTEBOOK_MAX_TOKENS} x "
        f"{NOTEBOOK_MAX_TOKENS} tokens.</div><ul>{items}</ul>"
        "<p>From <code>attention_from_scratch.view</code> (<code>to_html</code>) and "
        "<code>attention_from_scratch.explain</code>; write the page to a file and open it "
        "in a browser.</p></div>"
    )


def _text_html(text: str) -> str:
    """A narrative (``str`` of an explanation) as an escaped, styled HTML fragment.

    Its paragraphs are joined back from their 88-column lines, so that the browser
    reflows each to the width it has (as the page's script does).
    """
    return (
        f'<div class="afs-view"><style>{_BASE_CSS}</style>'
        f'<pre class="afs-text">{_escape(_paragraphs(text))}</pre></div>'
    )


def _paragraphs(text: str) -> str:
    """A narrative with each paragraph on one line: its continuation lines joined."""
    return text.replace("\n  ", " ")


def _display(obj: object) -> str | None:
    """What a notebook shows for a result (the bounded view) or an explanation (its text)."""
    if isinstance(obj, ScoreExplanation | QueryExplanation):
        return _text_html(str(obj))
    if isinstance(obj, Attention | ProjectedAttention):
        return notebook_html(obj)
    return None


# Results and explanations sit below this module; they display through this renderer.
register_notebook_display(_display)
