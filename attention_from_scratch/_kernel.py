r"""The same computations, arranged for speed (private).

The public functions of :mod:`~attention_from_scratch.softmax` and
:mod:`~attention_from_scratch.self_attention` show their formulas as the few lines
they are, and run them as written on small inputs (the running examples of the book
go through those lines). On large inputs they hand the same computation to this
module, which arranges it for speed and memory:

* the softmax goes over blocks of rows that stay in the processor's cache through
  every pass, writing in place (:func:`softmax_rows`);
* attention goes a few heads (or query rows) at a time, so that each chunk of scores
  stays in cache from the product with ``k``, through the softmax, to the product
  with ``v``, and the scores are overwritten by the weights (:func:`attend`); on
  large inputs the chunks run on all cores, one BLAS thread each
  (:func:`kernel_threads`, :func:`run_chunks`);
* the overflow guards decide from cheap bounds whether a result can have overflowed
  and only then scan it (:func:`score_bound`, :func:`check_overflow`,
  :func:`within_values`), or rescale by powers of two where the exact result fits
  (:func:`scaled_operands`, :func:`affine`, :func:`softmax_vjp_rescaled`);
* the norms work on rows scaled by a power of two so that no square overflows or
  underflows (:func:`scaled_rows`, :func:`divide_by_root`, :func:`reciprocal_root`).

Nothing here validates its input: the public functions have done that once. Tests
(``tests/test_kernel.py``) pin every arrangement to the readable formula, within
2 ulp, for every dtype, masks, bias, broadcasting and fully masked rows.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from functools import cache, lru_cache, partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attention_from_scratch._checks import (
    BoolArray,
    F,
    FloatArray,
    IntArray,
    all_finite,
    as_working,
    check_finite,
    check_row_max,
    every_finite,
    finite_result,
    fits,
    largest,
    overflow_advice,
    peak,
    silenced,
    sum_bound,
    working_dtype,
)

__all__ = [
    "BLOCK_BYTES",
    "CHUNK_BYTES",
    "DOT_FEATURES",
    "READABLE_ENTRIES",
    "SHORT_ROWS",
    "THREADS_ENV",
    "THREAD_BYTES",
    "UNSHIFTED_LIMIT",
    "affine",
    "affine_rescaled",
    "attend",
    "attention",
    "bias_peak",
    "check_overflow",
    "divide_by_root",
    "kernel_threads",
    "layer_norm_bound",
    "layer_norm_grads_rows",
    "layer_norm_rows",
    "layer_norm_stats",
    "layer_norm_vjp_bound",
    "layer_norm_vjp_rows",
    "linear_bound",
    "linear_vjp_bound",
    "masked_softmax",
    "matmul_rows",
    "max_along",
    "may_overflow",
    "merge_heads",
    "near_top",
    "never_attended",
    "ones",
    "raw_scores",
    "reciprocal_root",
    "report_rows",
    "row_sums",
    "run_large",
    "run_parts",
    "scaled_operands",
    "scaled_rows",
    "score_bound",
    "short_buffers",
    "softmax_rows",
    "softmax_vjp_rescaled",
    "split_heads",
    "sum_along",
    "unscaled_eps",
    "unshifted",
    "within_values",
]


#: Entries up to which the public functions run their formulas as written; larger
#: inputs come here (a softmax of this size fits in the L2 cache, blocking gains nothing).
READABLE_ENTRIES = 1 << 14

#: Bytes in one block of rows. A block this size stays in the L2 cache between the
#: max, subtract, exp, sum and scale passes over it, so each entry comes from main
#: memory once instead of once per pass.
BLOCK_BYTES = 1 << 19


def softmax_rows(
    z: FloatArray,
    out: NDArray[F],
    *,
    temperature: float = 1.0,
    where: BoolArray | None = None,
    allow_empty_rows: bool,
    report: Callable[[], object],
    threads: int = 1,
    shift: bool = True,
) -> NDArray[F]:
    """Write the softmax of each row of the 2-D ``z`` into ``out`` and return ``out``.

    The worker behind :func:`softmax` and attention. ``z`` (rows, n) is read, never
    written, unless it *is* ``out`` (attention lets the softmax overwrite its score
    buffer). ``out`` (rows, n) is C-contiguous in the working dtype; ``where`` (rows, n)
    marks the entries that may be read. The rows are processed in blocks of about
    ``BLOCK_BYTES``. When a row maximum is not finite, ``report()`` validates the
    whole input and raises; if it returns, those rows are empty rows, allowed. With
    ``threads`` > 1 the blocks are shared among that many threads: every row is
    computed exactly as on one thread (:func:`run_parts`). With ``shift=False`` the
    caller has proven every allowed ``|z|`` small enough for ``exp`` (attention's
    :func:`unshifted`): the row maxima are neither computed nor subtracted.
    """
    n = out.shape[1]
    step = max(1, BLOCK_BYTES // max(1, n * out.itemsize))  # rows per block
    starts = range(0, out.shape[0], step)
    blocks = partial(
        _softmax_blocks, z, out, starts, step, temperature, where, allow_empty_rows, report, shift
    )
    run_parts(blocks, len(starts), threads)
    return out


def _softmax_blocks(
    z: FloatArray,
    out: NDArray[F],
    starts: range,
    step: int,
    temperature: float,
    where: BoolArray | None,
    allow_empty_rows: bool,
    report: Callable[[], object],
    shift: bool,
    first: int,
    last: int,
) -> None:
    """The blocks ``starts[first:last]`` of :func:`softmax_rows`, on the calling thread."""
    n = out.shape[1]
    # over: (-1e308) - 1e308 -> -inf, whose exp is exactly 0. errstate (per thread)
    # also restores numpy's buffer size, which short_buffers changes.
    with np.errstate(over="ignore"):
        short_buffers(n)
        for start in starts[first:last]:
            rows = slice(start, start + step)
            z_blk, o_blk = z[rows], out[rows]  # (r, n) each, views
            allowed = None if where is None else where[rows]  # (r, n)
            if shift:
                # m = max_j z_j over the allowed entries: the stabilising shift, and a
                # cheap validation (NaN, +inf or a row of -inf make it non-finite).
                if allowed is None:
                    row_max = np.max(z_blk, axis=1, keepdims=True)  # (r, n) -> (r, 1)
                else:
                    row_max = np.max(z_blk, axis=1, keepdims=True, where=allowed, initial=-np.inf)
                if not every_finite(row_max):
                    report()  # raises unless the rows are empty rows, which are allowed
                    # Empty rows: shift by 0 so they stay -inf (not -inf - -inf = NaN).
                    np.copyto(row_max, 0.0, where=np.isneginf(row_max))
                # e = z - m <= 0, written straight into the output block
                np.subtract(z_blk, row_max, out=o_blk, dtype=o_blk.dtype)
            elif z is not out:  # no shift needed (|z| proven small): e = z
                np.copyto(o_blk, z_blk)
            if allowed is not None:  # entries not allowed are never read: -inf
                np.copyto(o_blk, -np.inf, where=~allowed)
            if temperature != 1.0:  # e = (z - m) / T, in float64: T never rounds to 0
                np.divide(o_blk, temperature, out=o_blk, dtype=np.float64, casting="same_kind")
            # e = exp(e): in (0, 1] after the shift (the row maximum gives exactly 1);
            # unshifted, within [exp(-c), exp(c)] for scores bounded by c (:func:`unshifted`)
            np.exp(o_blk, out=o_blk)
            total = np.sum(o_blk, axis=1, keepdims=True)  # s = sum_j e_j > 0, (r, 1)
            if allow_empty_rows:
                np.copyto(total, 1.0, where=total == 0.0)  # empty rows: 0 * (1 / 1) = 0
            np.multiply(o_blk, np.reciprocal(total, out=total), out=o_blk)  # p = e * (1 / s)


def short_buffers(n: int) -> None:
    """Let numpy broadcast a column of row maxima or row sums over rows of ``n`` entries.

    numpy's ufuncs work through buffers of 8192 entries; an ``(r, 1)`` operand broadcast
    over rows shorter than that is copied into them, which makes ``z - m`` and
    ``e * (1 / s)`` two to three times slower than a plain elementwise product. With a
    buffer as long as a row the column is read in place. (Below a few hundred entries a
    row is too short to gain; the default stays.) Call it inside ``np.errstate()``,
    which restores the buffer size.
    """
    if 256 <= n < 8192:
        np.setbufsize(n - n % 16)


def report_rows(
    x: FloatArray, axis: int, where: BoolArray | None, name: str, *, allow_empty_rows: bool
) -> None:
    """Raise the error that a non-finite row maximum of ``x`` (``where`` applied) stands for."""
    masked = x if where is None else np.where(where, x, -np.inf)
    row_max = np.max(masked, axis=axis, keepdims=True)
    check_row_max(row_max, masked, name, allow_empty_rows=allow_empty_rows)


def scaled_operands(
    q: FloatArray, k: FloatArray, scale: float, dtype: np.dtype[Any], *, own_k: bool = False
) -> tuple[FloatArray, FloatArray]:
    """``(q * scale, k)`` in ``dtype``, C order; ``(q, k * scale)`` if ``q * scale`` overflows.

    Scaling the (n, d_k) queries instead of the (n, m) scores saves multiplies, and
    :math:`(q s) k^\top = q (k s)^\top`, so the scale goes on whichever side stays finite
    (q and k are finite: a query of 1.7e38 with a scale of 2 and keys of 0 has scores 0,
    not NaN). C-contiguous operands make the bits independent of the inputs' layout.
    ``own_k``: ``k`` is the package's own array, in one layout whatever the input's (the
    heads of a projection), and is used as it is when it needs no scaling.

    Raises
    ------
    FloatingPointError
        If both ``q * scale`` and ``k * scale`` overflow ``dtype``.
    """
    s = dtype.type(scale)
    if abs(scale) <= 1.0:  # |q| scale <= |q|: finite q stays finite (the default 1/sqrt(d_k))
        return np.multiply(q, s, dtype=dtype, order="C"), _operand(k, dtype, own=own_k)
    with np.errstate(over="ignore", invalid="ignore"):
        q_scaled = np.multiply(q, s, dtype=dtype, order="C")  # (..., n, d_k)
        if every_finite(q_scaled):
            return q_scaled, as_working(k)
        k_scaled = np.multiply(k, s, dtype=dtype, order="C")  # (..., m, d_k)
    if every_finite(k_scaled):
        return as_working(q), k_scaled
    msg = (
        f"the attention scores overflowed {dtype}: q * scale and k * scale are both beyond "
        f"{float(np.finfo(dtype).max):.3g}; rescale q and k"
    )
    raise FloatingPointError(msg)


def _operand(arr: FloatArray, dtype: np.dtype[Any], *, own: bool) -> FloatArray:
    """``arr`` in ``dtype``: as it is if it is the package's own (``own``), else C order."""
    return arr if own and arr.dtype == dtype else as_working(arr)


def raw_scores(q: FloatArray, k: FloatArray, scale: float, dtype: np.dtype[Any]) -> FloatArray:
    """``(q * scale) @ k^T`` in ``dtype``: scale the (n, d) queries, not the (n, m) scores.

    An overflow gives inf or NaN silently here; :func:`check_overflow` reports it.
    """
    q_scaled, k_w = scaled_operands(q, k, scale, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        scores: FloatArray = np.matmul(q_scaled, np.swapaxes(k_w, -1, -2))
    return scores


def bias_peak(bias: FloatArray | None) -> float:
    """``max |bias|`` over its finite entries: 0 without a bias (``-inf`` bounds no score).

    One scan of the bias, made once per call and shared by :func:`score_bound` (may the
    scores overflow?) and :func:`unshifted` (may the softmax skip its shift?).
    """
    if bias is None or not bias.size:
        return 0.0
    finite = np.isfinite(bias)  # -inf forbids a key: no score to bound
    return float(np.max(np.abs(bias), where=finite, initial=0.0))


def score_bound(peak_qk: float, d_k: int, scale: float, peak_b: float) -> float:
    """An upper bound of ``|scores|``: ``|q_i . k_j| * |scale| <= d_k max|q| max|k| |scale|``.

    Plus ``peak_b``, the bias's largest finite ``|b|`` (:func:`bias_peak`). q and k are
    finite, so only a bound near the largest float can let the scores overflow. In
    Python floats: a product beyond them is ``inf``, silently.
    """
    return float(peak_qk) * d_k * abs(scale) + peak_b


def may_overflow(bound: float, dtype: np.dtype[Any]) -> bool:
    """Whether scores bounded by ``bound`` may overflow ``dtype`` (then they are scanned)."""
    return bound >= largest(dtype) / 2


def near_top(peak_v: float, dtype: np.dtype[Any]) -> bool:
    """Whether averages of values up to ``peak_v`` may round past the top of ``dtype``.

    A computed convex combination exceeds ``max|v|`` by a factor below 4, rounding of
    the weights and of the sum included, so below a quarter of the range it cannot; only
    above it does :func:`within_values` run.
    """
    return peak_v >= largest(dtype) / 4


def check_overflow(
    scores: FloatArray, bias: FloatArray | None, allowed: BoolArray | None = None
) -> None:
    """Raise FloatingPointError if an entry that may be attended is NaN or infinite.

    Only the entries that softmax reads are checked: those that ``allowed`` (the mask,
    broadcast against ``scores``; None: all) marks and whose bias is finite. An entry
    whose bias is ``-inf`` is never attended, whatever its score (``-inf`` or, when the
    dot product overflowed, NaN); a masked key changes nothing, so its overflow does not
    matter either.
    """
    overflowed = ~np.isfinite(scores)
    if not overflowed.any():
        return
    if bias is not None:
        overflowed &= np.isfinite(bias)
    if allowed is not None:
        overflowed &= allowed
    if overflowed.any():
        big = float(np.finfo(scores.dtype).max)
        msg = (
            f"the attention scores overflowed {scores.dtype} (q.k * scale is beyond "
            f"{big:.3g}); {overflow_advice(scores.dtype, 'rescale q and k')}"
        )
        raise FloatingPointError(msg)


def never_attended(scores: FloatArray, bias: FloatArray | None) -> FloatArray:
    """``scores`` with ``-inf`` wherever the bias is ``-inf`` (after :func:`check_overflow`).

    There the score may be NaN (an overflowed dot product plus ``-inf``); softmax must
    read such an entry as a key it may not attend, which ``-inf`` is. Writes in place
    when ``scores`` is writeable.
    """
    if bias is None or every_finite(scores):
        return scores
    if scores.flags.writeable and scores.shape == np.broadcast_shapes(scores.shape, bias.shape):
        np.copyto(scores, -np.inf, where=np.isneginf(bias))
        return scores
    out: FloatArray = np.where(np.isneginf(bias), -np.inf, scores)
    return out


def within_values(output: FloatArray, v: FloatArray, dtype: np.dtype[Any]) -> None:
    """Clip the entries of ``output`` that rounded past the largest float of ``dtype``.

    ``O = P V`` is a convex combination of the value rows, but the rounded weights of a
    row can sum to ``1 + a few ulps``: with values within a few ulps of the largest
    float, the sum rounds to infinity (or, for float16 computed in float32, past the
    largest float16). Such an entry's exact value is within rounding of the largest (or
    smallest) value of its column of ``v`` (..., m, d_v); every other entry, the zeros
    of rows with no key allowed included, is left as it is.
    """
    if output.dtype == dtype and every_finite(output):
        return  # in its own dtype, past the top is inf
    beyond = ~(np.abs(output) <= largest(dtype))  # inf, or past the top
    if not beyond.any():
        return
    low = np.min(v, axis=-2, keepdims=True)  # (..., m, d_v) -> (..., 1, d_v)
    high = np.max(v, axis=-2, keepdims=True)
    np.copyto(output, np.clip(output, low, high), where=beyond)


#: Bytes of scores computed at once: a chunk of heads (or of the query rows of one head)
#: whose scores stay in a core's L2 cache (1 MiB is common) from the product with k,
#: through the softmax, to the product with v, instead of going out to main memory and
#: back. With two threads at (4, 8, 512, 64) float32, in one run, chunks of one head
#: (1 MiB) took 33.6 ms, of two heads 36.4 ms and of four 44.8 ms.
CHUNK_BYTES = 1 << 20


#: Arrays from this many bytes up are computed on several threads: attention's chunks
#: (BLAS held to one thread in each) and the softmax's blocks of rows. Below, handing
#: work to a thread costs more than it saves.
THREAD_BYTES = 1 << 21

#: The environment variable that sets how many threads large inputs use (1: one, the
#: chunks one after the other with BLAS's own threads; unset: as many as BLAS uses).
THREADS_ENV = "AFS_NUM_THREADS"


def kernel_threads() -> int:
    """How many threads a large input is computed on (attention's chunks, softmax's rows).

    ``$AFS_NUM_THREADS`` when it is set (1: one thread, the chunks one after the
    other). Else as many as numpy's BLAS would use (read with threadpoolctl when it is
    installed; else ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or
    ``MKL_NUM_THREADS`` when set, else the cores this process may run on).
    """
    configured = os.environ.get(THREADS_ENV)
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            msg = f"{THREADS_ENV} must be a positive integer, got {configured!r}"
            raise ValueError(msg)
        return int(configured)
    controller = _blas_controller()
    if controller is not None:
        blas = controller.select(user_api="blas").lib_controllers
        return max((lib.num_threads for lib in blas), default=1)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


@cache
def _blas_controller() -> Any:
    """threadpoolctl's controller of the loaded BLAS, made once; None without threadpoolctl."""
    try:
        import threadpoolctl  # noqa: PLC0415 - optional, read on large inputs only
    except ImportError:
        return None
    return threadpoolctl.ThreadpoolController()


@cache
def _pool(threads: int, pid: int) -> Any:  # noqa: ARG001 - part of the key
    """A pool of ``threads`` worker threads, made on first use and kept, per process.

    ``pid`` is part of the cache key: a process forked from one that made a pool has
    none of its threads, and gets a pool of its own.
    """
    # imported here: concurrent.futures costs an import of attention_from_scratch ~5 ms,
    # and only large inputs need it
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="afs-kernel")


def run_parts(work: Callable[[int, int], object], count: int, threads: int) -> None:
    """``work(start, stop)`` over ``range(count)`` cut into ``threads`` contiguous parts.

    One part on this thread when ``threads`` is 1; else the parts on a kept pool of
    threads (numpy's loops release the GIL), waiting for all. The first error a part
    raises is raised here.
    """
    if threads <= 1 or count < 2:
        work(0, count)
        return
    parts = min(threads, count)
    cuts = [count * p // parts for p in range(parts + 1)]
    pool = _pool(parts, os.getpid())
    futures = [pool.submit(work, a, b) for a, b in itertools.pairwise(cuts)]
    for done in futures:
        done.result()


def run_large(work: Callable[[int, int], object], count: int, nbytes: int) -> None:
    """``work(first, last)`` over ``range(count)``: on every core when the work is large.

    From :data:`THREAD_BYTES` (``nbytes``, the size of what the work computes) up, and
    with threadpoolctl installed, the parts run on :func:`kernel_threads` threads with
    numpy's BLAS held to one thread in each, so that its threads and ours do not
    multiply. Each part's arithmetic is the same whichever thread runs it and however
    many there are, so the result does not depend on them, bit for bit. Otherwise (and
    with one thread) one call, on this thread, with BLAS as it is.
    """
    controller = _blas_controller() if nbytes >= THREAD_BYTES else None
    threads = 1 if controller is None else kernel_threads()  # read before BLAS is held to 1
    if controller is None or threads == 1:
        work(0, count)
        return
    with controller.limit(limits=1, user_api="blas"):
        run_parts(work, count, threads)


def attend(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    weights: FloatArray,
    output: FloatArray,
    *,
    mask: BoolArray | None,
    bias: FloatArray | None,
    guard: bool,
    shift: bool = True,
) -> None:
    """Fill ``weights`` with ``softmax(q k^T + bias, where=mask)`` and ``output`` with ``weights v``.

    Every array is broadcast to the full batch shape: q (..., n, d_k) already scaled,
    k (..., m, d_k), v (..., m, d_v), mask and bias (..., n, m); weights (..., n, m) and
    output (..., n, d_v) are the C-contiguous result buffers, all in the working dtype.
    The work goes chunk by chunk, each chunk a few heads or some query rows of one head.
    From :data:`THREAD_BYTES` of scores up, with threadpoolctl installed, the chunks run
    on :func:`kernel_threads` threads with numpy's BLAS held to one thread each; the
    result is then the same, bit for bit, on any number of threads. ``shift=False``:
    every score is proven small (:func:`unshifted`), the softmax skips the row maxima.
    """
    batch = weights.shape[:-2]
    n, m = weights.shape[-2:]
    # Drop the batch axes of length 1 (a view): chunks are then taken along the last axis.
    *outer, heads = tuple(size for size in batch if size != 1) or (1,)
    rows = max(1, CHUNK_BYTES // max(1, m * weights.itemsize))  # score rows per chunk
    head_step = max(1, rows // max(1, n))  # whole heads per chunk, or one head ...
    if outer and head_step > heads:
        # Short sequences: a chunk holds more than the last axis. Every batch axis becomes
        # one (a view of the buffers; a copy of an operand broadcast along some), so a
        # chunk spans many sequences instead of a Python loop going one by one.
        outer, heads = [], math.prod(batch)

    def chunked(arr: Any) -> Any:
        return arr.reshape(*outer, heads, *arr.shape[-2:])  # (..., heads, a, b)

    q, v, weights, output = chunked(q), chunked(v), chunked(weights), chunked(output)
    k_t = chunked(np.swapaxes(k, -1, -2))  # (..., heads, d_k, m)
    mask = None if mask is None else chunked(mask)
    bias = None if bias is None else chunked(bias)
    row_step = max(1, n if head_step > 1 else min(n, rows))  # ... in blocks of rows

    def chunk(at: tuple[Any, ...]) -> None:
        at_heads = at[:-1]
        scores = weights[at]  # (h, r, m): a C-contiguous block of the buffer
        # S = (Q scale) K^T + B   (Eq. 1)
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            np.matmul(q[at], k_t[at_heads], out=scores)  # (h, r, d_k) @ (h, d_k, m)
            if bias is not None:
                np.add(scores, bias[at], out=scores)
        if guard:  # only the entries that may be attended
            bias_at = None if bias is None else bias[at]
            check_overflow(scores, bias_at, None if mask is None else mask[at])
            never_attended(scores, bias_at)  # -inf where the bias is -inf
        # P = softmax(S) over the keys, in place; masked entries 0, empty rows 0
        flat = scores.reshape(-1, m)  # (h r, m), a view
        allowed = None if mask is None else mask[at].reshape(-1, m)
        softmax_rows(
            flat,
            flat,
            where=allowed,
            allow_empty_rows=True,
            report=partial(report_rows, flat, -1, allowed, "scores", allow_empty_rows=True),
            shift=shift,
        )
        # O = P V (near the largest float it may round past it: within_values)
        with np.errstate(over="ignore", invalid="ignore"):
            np.matmul(scores, v[at_heads], out=output[at])  # (h, r, m) @ (h, m, d_v)

    chunks = [
        (*index, slice(h, h + head_step), slice(r, r + row_step))
        for index in np.ndindex(*outer)
        for h in range(0, heads, head_step)
        for r in range(0, n, row_step)
    ]

    def some(first: int, last: int) -> None:
        for at in chunks[first:last]:
            chunk(at)

    run_large(some, len(chunks), weights.nbytes)


def matmul_rows(a: FloatArray, b: FloatArray) -> FloatArray:
    """``a @ b`` for ``a`` (..., k) and a matrix ``b`` (k, m): every row of ``a`` in one product.

    ``a @ b`` with batch axes multiplies matrix by matrix, one BLAS call per batch
    entry; stacking the rows of a C-contiguous ``a`` into one ``(N, k)`` matrix (a view)
    makes it a single call, several times faster for many short sequences. Each entry
    is the same sum of ``k`` products, in the order BLAS chooses for the shape.
    """
    if a.ndim <= 2:
        out: FloatArray = a @ b
        return out
    rows = a.reshape(-1, a.shape[-1]) @ b  # (N, k) @ (k, m)
    stacked: FloatArray = rows.reshape(*a.shape[:-1], b.shape[-1])
    return stacked


def linear_bound(d_in: int, peak_x: float, peak_w: float, peak_b: float) -> float:
    """A bound of the computed ``x @ w + b``: ``|x_i . w_j + b_j| <= d_in max|x| max|w| + max|b|``.

    Through :func:`sum_bound` (rounding included), the bias counted as one more term.
    """
    return sum_bound(d_in, peak_x, peak_w) + 2.0 * peak_b


def linear_vjp_bound(rows: int, d_out: int, peak_x: float, peak_w: float, peak_g: float) -> float:
    """A bound of every gradient of :func:`~attention_from_scratch.projections.linear_vjp`.

    With ``rows`` rows: ``|dX| <= d_out max|dY| max|W|``, ``|dW| <= rows max|X| max|dY|``
    and ``|db| <= rows max|dY|``, each through :func:`sum_bound` (rounding included).
    """
    return max(
        sum_bound(d_out, peak_g, peak_w), sum_bound(rows, peak_x, peak_g), sum_bound(rows, peak_g)
    )


def affine(
    x: FloatArray,
    weight: FloatArray,
    bias: FloatArray | None,
    what: str = "x @ weight + bias",
    *,
    bound: float | None = None,
) -> FloatArray:
    """``x @ weight + bias`` on validated arrays of one dtype, float16 in float32.

    The operands are made C-contiguous first, so the result does not depend on the
    memory layout of ``x`` (Fortran order, negative strides). Finite inputs whose
    products or sums overflow the dtype raise :class:`FloatingPointError` (naming
    ``what``) instead of returning ``inf`` with a ``RuntimeWarning``. ``bound`` is a
    bound of the result the caller knows (:func:`linear_bound`): when it :func:`fits`
    the dtype, nothing can overflow and the result is not scanned.
    """
    xw = as_working(x)  # (..., d_in), C order, float16 -> float32
    ww = as_working(weight)  # (d_in, d_out)
    bw = None if bias is None else as_working(bias)  # (d_out,)
    if bound is not None and fits(bound, x.dtype):  # proven finite: the same lines, unguarded
        proven = matmul_rows(xw, ww)  # (..., d_in) @ (d_in, d_out) -> (..., d_out)
        if bw is not None:
            proven += bw
        return proven.astype(x.dtype, copy=False)  # float16: fits, by the bound
    with np.errstate(over="ignore", invalid="ignore"):  # reported by finite_result
        out = matmul_rows(xw, ww)  # (..., d_in) @ (d_in, d_out) -> (..., d_out)
        if bw is not None:
            out += bw  # + b, broadcast over the rows
        finite = all_finite(out)
    if finite:
        if out.dtype == x.dtype:
            return out
    else:  # a product or a partial sum overflowed; the exact result may still fit
        out = affine_rescaled(xw, ww, bw)
    return finite_result(out, x.dtype, what)  # float16 rounded once; overflow reported


def affine_rescaled(x: FloatArray, weight: FloatArray, bias: FloatArray | None) -> FloatArray:
    """``x @ weight + bias`` when a product or a partial sum overflows the dtype.

    Each row of ``x`` is divided by a power of two ``2^e_i > max_k |x_ik|`` and each
    column of ``weight`` by ``2^f_j > max_k |w_kj|``, exactly; the products are then
    below 1 and their sums below ``d_in``, so nothing overflows, and the result is
    scaled back by ``2^(e_i + f_j)`` (the bias is added in the scaled domain). An entry
    that is still infinite is one whose exact result does not fit, for the caller to
    report. ``[[1e308, 1e308, -1e308]] @ ones((3, 1))`` gives ``1e308``.
    """
    _, e = np.frexp(np.max(np.abs(x), axis=-1, keepdims=True))  # (..., 1): |x_i| < 2^e_i
    _, f = np.frexp(np.max(np.abs(weight), axis=0))  # (d_out,): |w_j| < 2^f_j
    with np.errstate(over="ignore", invalid="ignore"):
        # (x_i / 2^e_i) . (w_j / 2^f_j) + b_j / 2^(e_i + f_j), every term below 1
        scaled = np.ldexp(x, -e) @ np.ldexp(weight, -f)  # (..., d_in) @ (d_in, d_out)
        if bias is not None:
            scaled += np.ldexp(bias, -(e + f))
        out: FloatArray = np.ldexp(scaled, e + f)  # times 2^(e_i + f_j)
    return out


def masked_softmax(
    scores: FloatArray,
    shape: tuple[int, ...],
    mask: BoolArray | None,
    bias: FloatArray | None,
    *,
    guard: bool | None,
) -> FloatArray:
    """``softmax(scores, where=mask)`` over the last axis, broadcast to ``shape``.

    The softmax step of attention on finite scores in the working dtype: masked keys
    get 0 and a row with no key allowed (or only ``-inf`` biases) is all zeros. With
    ``guard`` (the bound of :func:`score_bound` says the scores may have overflowed)
    the scores are scanned first and an overflow raises :class:`FloatingPointError`;
    with ``guard=None`` (no bound known) they are scanned when one of them is not
    finite. Up to :data:`READABLE_ENTRIES` entries it is the formula as written;
    beyond, :func:`softmax_rows` in place over the scores' buffer.
    """
    if guard or (guard is None and not every_finite(scores)):
        check_overflow(np.broadcast_to(scores, shape), bias, mask)  # the allowed entries
        scores = never_attended(scores, bias)  # a NaN where the bias is -inf: -inf
    if math.prod(shape) <= READABLE_ENTRIES:
        # the mask may have batch axes the scores lack (q, k, v of one sequence)
        if scores.shape != shape:
            scores = np.broadcast_to(scores, shape)  # (..., n, m), a view
        if mask is None and bias is None and shape[-1] > 0:  # every key allowed
            # m = max_j s_j;  e_j = exp(s_j - m) <= 1;  p_j = e_j / sum_l e_l
            e = np.subtract(scores, max_along(scores, -1))  # a new array: scores are kept
            np.exp(e, out=e)  # in place: the bits of np.exp(scores - max), no temporary
            e /= sum_along(e, -1)
            return e
        allowed = True if mask is None else mask
        # m = max_j s_j over the allowed keys; 0 for a row with none (its e stays 0)
        top = max_along(scores if mask is None else np.where(mask, scores, -np.inf), -1)
        empty = mask is not None or bias is not None  # rows may have nothing allowed
        if empty:
            np.copyto(top, 0.0, where=top == -np.inf)
        # e_j = exp(s_j - m) <= 1, 0 where not allowed;  p_j = e_j / sum_l e_l
        e = np.exp(scores - top, where=allowed, out=np.zeros(shape, dtype=scores.dtype))
        total = sum_along(e, -1)
        if empty:
            np.copyto(total, 1.0, where=total == 0.0)  # a row with nothing allowed: 0 / 1 = 0
        e /= total  # in place: p_j = e_j / sum_l e_l
        return e
    weights: FloatArray = scores
    if scores.shape != shape or not (scores.flags.c_contiguous and scores.flags.writeable):
        weights = np.array(np.broadcast_to(scores, shape), order="C")  # (..., n, m), a copy
    n = shape[-1]
    flat = weights.reshape(-1, n)  # (rows, m), a view
    allowed_rows = None if mask is None else np.broadcast_to(mask, shape).reshape(-1, n)
    softmax_rows(  # not empty: larger than READABLE_ENTRIES
        flat,
        flat,
        where=allowed_rows,
        allow_empty_rows=True,
        report=partial(report_rows, flat, -1, allowed_rows, "scores", allow_empty_rows=True),
        threads=kernel_threads() if weights.nbytes >= THREAD_BYTES else 1,
    )
    return weights


def attention(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    shape: tuple[int, ...],
    *,
    scale: float,
    mask: BoolArray | None,
    bias: FloatArray | None,
    guard: bool | None,
    peak_b: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Eq. 1 chunk by chunk (:func:`attend`): ``(output, weights)`` in the working dtype.

    ``q`` (..., n, d_k), ``k`` (..., m, d_k), ``v`` (..., m, d_v) are checked and in
    one dtype; ``shape`` is the scores' (..., n, m) with every batch axis broadcast.
    ``guard`` says whether the scores may overflow; None: decide from ``max|q| max|k|``.
    ``peak_b`` is :func:`bias_peak` of ``bias`` when the caller has it (None: scanned here).
    """
    *batch, n, m = shape
    d_k, d_v = q.shape[-1], v.shape[-1]
    dtype = working_dtype(q.dtype)
    if peak_b is None:
        peak_b = bias_peak(bias)
    if guard is None:
        guard = may_overflow(score_bound(peak(q, "q") * peak(k, "k"), d_k, scale, peak_b), dtype)
    # Q scale: scale the n x d_k queries, not the n x m scores (n d_k multiplies).
    # C-contiguous operands: BLAS sums in one order (with the same FMAs) whatever the
    # memory layout of q, k, v, so the result does not depend on it, bit for bit; an
    # operand that already is C-contiguous in the working dtype is not copied.
    q_scaled, k_w = scaled_operands(q, k, scale, dtype)  # q * scale, or k * scale
    shift = guard or not unshifted(q_scaled, k_w, peak_b, dtype)  # no shift: scores proven small
    weights = np.empty(shape, dtype=dtype)  # (..., n, m): S, then P in place
    output = np.empty((*batch, n, d_v), dtype=dtype)  # (..., n, d_v)
    attend(
        np.broadcast_to(q_scaled, (*batch, n, d_k)),
        np.broadcast_to(k_w, (*batch, m, d_k)),
        np.broadcast_to(as_working(v), (*batch, m, d_v)),
        weights,
        output,
        mask=None if mask is None else np.broadcast_to(mask, shape),
        bias=None if bias is None else np.broadcast_to(bias, shape),
        guard=guard,
        shift=shift,
    )
    return output, weights


#: Scores up to this in absolute value are exponentiated without the shift by their
#: row maximum (:func:`unshifted`), by the working dtype's size in bytes. exp(64) is
#: 6e27 and exp(-64) 2e-28, normal float32 numbers far from both ends of its range
#: (3.4e38, 1.2e-38): no weight overflows, underflows or loses precision, and a row of
#: 2**31 keys still sums below the largest float32. 512 for float64 (exp(512) = 2e222).
UNSHIFTED_LIMIT = {4: 64.0, 8: 512.0}


def unshifted(q: FloatArray, k: FloatArray, peak_b: float, dtype: np.dtype[Any]) -> bool:
    r"""Whether every score ``q_i . k_j + b_ij`` is provably within :data:`UNSHIFTED_LIMIT`.

    The Cauchy--Schwarz inequality, :math:`|q_i \cdot k_j| \le \|q_i\| \, \|k_j\|` (the
    self-attention chapter uses it for the self-score), bounds every score of a row by
    :math:`\max_i \|q_i\| \max_j \|k_j\| + \max |b|` (``peak_b``, :func:`bias_peak`): two passes over the
    ``(n + m) d_k`` entries of ``q`` (scaled) and ``k`` instead of one over the
    :math:`n \times m` scores. Below the limit :math:`e^{s}` neither overflows nor
    underflows, so the softmax's shift by the row maximum, a pass to find it and a pass
    to subtract it, is unnecessary: the shift is there only to keep the exponentials in
    range (:cite:t:`blanchard2021accurately`, §2). The squares are summed in the working dtype (an
    overflow gives inf: no skip) and the bound is raised by 1% for their rounding.
    """
    limit = UNSHIFTED_LIMIT.get(dtype.itemsize)
    if limit is None:
        return False
    if peak_b >= limit:
        return False
    with np.errstate(over="ignore", invalid="ignore"):  # inf or NaN: no skip
        q_sq = float(np.max(np.einsum("...d,...d->...", q, q), initial=0.0))  # max |q_i|^2
        k_sq = float(np.max(np.einsum("...d,...d->...", k, k), initial=0.0))  # max |k_j|^2
        bound = math.sqrt(q_sq * k_sq) * 1.01 + peak_b if math.isfinite(q_sq * k_sq) else math.inf
    return bound <= limit


def split_heads(arr: FloatArray, n_heads: int) -> FloatArray:
    """``(..., n, h*d) -> (..., h, n, d)``, a view (no validation)."""
    *batch, n, width = arr.shape
    split: FloatArray = np.swapaxes(arr.reshape(*batch, n, n_heads, width // n_heads), -3, -2)
    return split


def merge_heads(heads: FloatArray) -> FloatArray:
    """``(..., h, n, d) -> (..., n, h*d)``: the head blocks side by side (no validation)."""
    *batch, h, n, d = heads.shape
    merged: FloatArray = np.swapaxes(heads, -3, -2).reshape(*batch, n, h * d)
    return merged


def softmax_vjp_rescaled(p: FloatArray, g: FloatArray, axis: int) -> FloatArray:
    """``p * (g - sum(g * p))`` when ``|g|`` is near the largest float.

    The direct formula's ``g_j - <g, p>`` may overflow although the result does not.
    The VJP is linear in ``g``, so each row of ``g`` is scaled by a power of two
    (exactly) below 1, and the result scaled back; what still overflows is the exact
    result's, for the caller to report.
    """
    _, e = np.frexp(np.max(np.abs(g), axis=axis, keepdims=True))  # max|g| < 2^e
    gy = np.ldexp(g, -e)  # |g / 2^e| < 1
    with np.errstate(over="ignore", invalid="ignore"):
        inner = np.sum(gy * p, axis=axis, keepdims=True)
        out: FloatArray = np.ldexp(p * (gy - inner), e)
    return out


# --- norms: rows scaled by powers of two, so that no square overflows or underflows ---


def scaled_rows(
    work: FloatArray, axis: int, original: FloatArray, name: str
) -> tuple[FloatArray, IntArray]:
    """Return ``(y, e)`` with ``y = work / 2**e`` and ``e`` the exponent of each row's max |x|.

    ``2**(e-1) <= max|x| < 2**e``, so every ``|y| < 1`` and each row of ``y`` has an entry
    of size at least 1/2 (or is all zeros, with ``e = 0``). Dividing by a power of two is
    exact, so ``y`` carries no rounding error. The row maximum also validates the input:
    it is NaN or ``inf`` exactly when the row holds one.
    """
    # m = max_i |x_i| per row, 0 for empty rows
    row_max = np.max(np.abs(work), axis=axis, keepdims=True, initial=0.0)  # (..., 1, ...)
    if not every_finite(row_max):
        check_finite(original, name)  # raises, naming the first bad index
    _, e = np.frexp(row_max)  # m = f * 2^e with 1/2 <= f < 1 (f = e = 0 for m = 0)
    y = np.ldexp(work, -e)  # y = x / 2^e, exact
    return y, e


def divide_by_root(num_y: FloatArray, ms_y: FloatArray, e: IntArray, eps: float) -> FloatArray:
    """Return ``num / sqrt(ms + eps)`` from ``num = num_y * 2**e`` and ``ms = ms_y * 4**e``.

    In the units of ``y`` it is ``num_y / sqrt(ms_y + eps / 4**e)``: the same numbers
    scaled by powers of two, so where nothing over- or underflows the result is bit for
    bit the textbook formula. Rows so small that ``eps / 4**e`` overflows have
    ``ms << eps``, and get ``num / sqrt(eps)``. Rows so large that ``eps / 4**e``
    underflows to 0 have ``eps << ms``, unless ``ms = 0``: a constant row of
    :func:`layer_norm`, whose ``num`` is exactly 0, and so is its result.
    """
    eps_w = np.asarray(eps, dtype=num_y.dtype)
    with np.errstate(over="ignore"):
        eps_y = np.ldexp(eps_w, -2 * e)  # eps / 4^e, exact (or 0, or inf for tiny rows)
    root = np.sqrt(ms_y + eps_y)  # sqrt(ms + eps) / 2^e
    with np.errstate(invalid="ignore"):  # 0 / 0 only in rows whose num is 0: set below
        out: FloatArray = num_y / root  # num / sqrt(ms + eps)
    empty = root == 0.0
    if empty.any():
        out[np.broadcast_to(empty, out.shape)] = 0.0  # num = 0: 0 / sqrt(eps) = 0
    tiny = np.isinf(eps_y)
    if tiny.any():
        rows = np.broadcast_to(tiny, out.shape)
        np.divide(np.ldexp(num_y, e), np.sqrt(eps_w), out=out, where=rows)  # num / sqrt(eps)
    return out


def reciprocal_root(ms_y: FloatArray, e: IntArray, eps: float) -> FloatArray:
    """``1 / sqrt(ms + eps)`` from ``ms = ms_y * 4**e`` (keepdims rows), as in :func:`divide_by_root`.

    In the units of ``y`` it is ``2**-e / sqrt(ms_y + eps / 4**e)``. Rows where
    ``eps / 4**e`` overflows (``ms << eps``) or where the root is 0 (a constant row so
    large that ``eps / 4**e`` underflows) get ``1 / sqrt(eps)``.
    """
    eps_w = np.asarray(eps, dtype=ms_y.dtype)
    with np.errstate(over="ignore", divide="ignore"):
        eps_y = np.ldexp(eps_w, -2 * e)  # eps / 4^e, exact (or 0, or inf)
        root = np.sqrt(ms_y + eps_y)  # sqrt(ms + eps) / 2^e
        out: FloatArray = np.ldexp(1.0 / root, -e)  # 1 / sqrt(ms + eps)
    fallback = np.isinf(eps_y) | (root == 0.0)
    if fallback.any():
        with np.errstate(divide="ignore"):  # eps = 0 only reaches here for rows checked out
            out[fallback] = 1.0 / np.sqrt(eps_w)
    return out


# --- layer_norm: every row at once, no scaling where no square can overflow ---


def unscaled_eps(dtype: np.dtype[Any]) -> float:
    """The smallest ``eps`` for which :func:`layer_norm_stats` may skip the scaling.

    Without the power-of-two scaling a row of tiny entries has squares that underflow
    and a variance that is subnormal or 0. With ``eps`` at least this large such a
    variance is below half an ulp of ``eps``, so ``var + eps`` rounds to ``eps`` either
    way and the scaling changes nothing (``1e-5`` is far above it: about ``1e-292`` for
    float64, ``1e-31`` for float32).
    """
    return _UNSCALED_EPS[working_dtype(dtype).char]


_UNSCALED_EPS = {
    np.dtype(t).char: float(np.finfo(t).tiny) * 2.0 ** (np.finfo(t).nmant + 2)
    for t in (np.float32, np.float64)
}


def ones(n: int, dtype: np.dtype[Any]) -> FloatArray:
    """``n`` ones of ``dtype``: ``rows @ ones(d)`` sums every row in one BLAS call.

    Short vectors (up to 4096, what small batches need) are made once and kept,
    read-only, so that a training step does not allocate them again and again.
    """
    if n > 4096:
        return np.ones(n, dtype=dtype)
    return _short_ones(n, np.dtype(dtype))


@lru_cache(maxsize=64)
def _short_ones(n: int, dtype: np.dtype[Any]) -> FloatArray:
    out: FloatArray = np.ones(n, dtype=dtype)
    out.setflags(write=False)
    return out


#: Entries of a row summed by one matrix-vector product in :func:`row_sums`; longer
#: rows are first halved pairwise down to this many.
DOT_FEATURES = 16


#: Rows per entry of a row from which short rows (up to :data:`DOT_FEATURES` entries)
#: are reduced column by column in :func:`max_along` and :func:`sum_along`: numpy
#: reduces a short last axis with one call of its inner loop per row, ~25 ns each, and
#: a pass over a column costs ~1 us, so the columns pay from about 40 rows per column.
#: Measured: 768 rows of 6 scores (32 sequences of 6 tokens, 4 heads) take 31 us by
#: ``np.max``, 10 us by columns; 192 rows of 8 take 6 us by ``np.sum``, 10 by columns.
SHORT_ROWS = 40


def _short_rows(arr: FloatArray, axis: int) -> bool:
    """Whether ``arr`` is many short rows along its last axis ``axis``: ``SHORT_ROWS d`` rows of ``d``."""
    d = arr.shape[axis] if arr.ndim else 0
    return axis in (-1, arr.ndim - 1) and 1 <= d <= DOT_FEATURES and arr.size >= SHORT_ROWS * d * d


def max_along(arr: FloatArray, axis: int) -> FloatArray:
    """``np.max(arr, axis=axis, keepdims=True)``, the same values, faster on many short rows.

    Many short rows along the last axis go column by column: the running maximum of
    the first ``j`` columns against column ``j``, ``d - 1`` vectorised passes over the
    rows instead of a loop call per row. A maximum is exact whatever the order, and
    ``np.maximum`` propagates NaN as ``np.max`` does (``tests/test_kernel.py``); only
    the sign of a zero maximum may differ, which no shift can see (``x - 0`` and
    ``x - (-0)`` are equal).
    """
    if not _short_rows(arr, axis):
        out: FloatArray = np.maximum.reduce(arr, axis=axis, keepdims=True)  # np.max, unwrapped
        return out
    rows = arr.reshape(-1, arr.shape[-1])  # (R, d), a view of a C-contiguous array
    top = rows[:, 0].copy()  # (R,)
    for j in range(1, rows.shape[1]):
        np.maximum(top, rows[:, j], out=top)
    return top.reshape(*arr.shape[:-1], 1)


def sum_along(arr: FloatArray, axis: int) -> FloatArray:
    """``np.sum(arr, axis=axis, keepdims=True)``, the same bits, faster on many short rows.

    Many short rows along the last axis are summed column by column in the order of
    numpy's own pairwise summation of a row (:cite:t:`higham2002accuracy`, §4.2), so
    every sum is the one ``np.sum`` gives, bit for bit (``tests/test_kernel.py``): from
    0, one term after the other up to 7 terms; from 8 terms, eight running sums
    ``r_j = a_j + a_(j+8)`` added as a tree ``((r_0 + r_1) + (r_2 + r_3)) + ...``, then the
    terms after the first eight one by one. float16 is left to numpy (it sums in
    float32).
    """
    if not _short_rows(arr, axis) or arr.dtype == np.float16:
        out: FloatArray = np.add.reduce(arr, axis=axis, keepdims=True)  # np.sum, unwrapped
        return out
    rows = arr.reshape(-1, arr.shape[-1])  # (R, d), a view of a C-contiguous array
    d = rows.shape[1]
    columns = [rows[:, j] for j in range(d)]  # (R,) each, views
    if d < 8:
        total = columns[0] + arr.dtype.type(0.0)  # 0 + a_0: -0 becomes +0, as in numpy
        for column in columns[1:]:
            total += column
    else:
        # eight running sums: a_j, plus a_(j+8) when a row has 16 terms
        r = [columns[j] + columns[j + 8] for j in range(8)] if d == 16 else columns[:8]
        total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for column in columns[8:] if d < 16 else []:  # the terms after the first eight
            total += column
        total += arr.dtype.type(0.0)  # numpy starts from its identity: -0 becomes +0
    return total.reshape(*arr.shape[:-1], 1)


def row_sums(rows: FloatArray) -> FloatArray:
    """Sums of the rows of ``rows`` (R, d) -> (R,): ``rows @ 1``.

    Up to :data:`DOT_FEATURES` entries, one matrix-vector product: a single BLAS call
    for all ``R`` rows, where a reduction over a short last axis costs a call per row.
    BLAS sums with several accumulators, as accurate for these few terms as NumPy's
    pairwise summation (``tests/test_kernel.py``). Longer rows are first added
    pairwise, the first half of the columns to the second, down to that many, so
    the rounding error grows like ``log2 d`` (:cite:t:`higham2002accuracy`, §4.2).
    """
    while rows.shape[1] > DOT_FEATURES:
        half = rows.shape[1] // 2
        total = rows[:, :half] + rows[:, half : 2 * half]  # (R, half)
        if rows.shape[1] % 2:
            total[:, -1] += rows[:, -1]  # the odd column out
        rows = total
    out: FloatArray = rows @ ones(rows.shape[1], rows.dtype)  # (R, d) @ (d,)
    return out


def layer_norm_stats(
    x: FloatArray, eps: float
) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """``(x_hat, mean, root)`` of :func:`~attention_from_scratch.norms.layer_norm`'s rows, or None.

    The same corrected two-pass algorithm on every row of ``x`` (..., d) at once, the
    rows stacked into ``(R, d)``, each sum over a row one matrix-vector product
    (:func:`row_sums`) instead of a reduction that costs a call per row.
    ``x_hat (R, d) = (x - mu) / root`` with ``root (R, 1) = sqrt(sigma^2 + eps)``, and
    ``mean (R, 1) = mu``, in the working dtype.

    No row is scaled by a power of two: None when that could matter, for the caller to
    take the scaled path. That is when ``eps`` is below :func:`unscaled_eps` (a
    variance that underflows could count) or when ``root`` is not finite (a sum or a
    square overflowed, or ``x`` holds NaN or an infinity, which the scaled path
    reports). Where neither happens, the scaling by ``2**-e`` would have been exact
    and changed nothing but the order of the sums: the results agree with the scaled
    path to within the rounding of the sums (``tests/test_kernel.py``). A constant row
    still has ``x_hat`` exactly 0: its centred values all equal ``x - mean``, whose
    mean is itself. ``root >= sqrt(eps)`` with ``eps`` at least :func:`unscaled_eps`
    (``4e-292`` in float64, ``4e-31`` in float32), so ``1 / root`` is finite: the
    reciprocal standard deviation needs no guard.
    """
    dtype = working_dtype(x.dtype)
    if eps < unscaled_eps(dtype):
        return None
    d = x.shape[-1]
    rows = np.ascontiguousarray(x, dtype=dtype).reshape(-1, d)  # (R, d)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow makes root inf: None
        mean = row_sums(rows)[:, None] / d  # mu = sum(x) / d: (R, 1)
        centred = rows - mean  # x - mu, with mu rounded
        shift = row_sums(centred)[:, None] / d  # mean(x - mu): mu's rounding error
        centred -= shift
        mean += shift
        var = row_sums(centred * centred)[:, None] / d  # sigma^2 = mean((x - mu)^2)
        root = np.sqrt(var + dtype.type(eps))  # sqrt(sigma^2 + eps) >= sqrt(eps)
    if not every_finite(root):
        return None
    centred /= root  # x_hat = (x - mu) / sqrt(sigma^2 + eps)
    return centred, mean, root


def layer_norm_rows(
    x: FloatArray, gamma: FloatArray | None, beta: FloatArray | None, eps: float
) -> FloatArray | None:
    """``layer_norm(x, gamma, beta, eps=eps)`` by :func:`layer_norm_stats`, or None.

    ``x`` (..., d), ``gamma`` and ``beta`` (d,) are validated; the result is in the
    working dtype, C-contiguous, not yet checked for overflow (``gamma`` or ``beta``
    may make it too large). None when the rows need the scaled path.
    """
    stats = layer_norm_stats(x, eps)
    if stats is None:
        return None
    x_hat = stats[0]  # (R, d), a new array: scaled in place
    with np.errstate(over="ignore", invalid="ignore"):  # reported by the caller
        g = None if gamma is None else gamma.astype(x_hat.dtype, copy=False)
        out = x_hat if g is None else np.multiply(x_hat, g, out=x_hat)  # * gamma
        if beta is not None:
            out += beta.astype(out.dtype, copy=False)  # + beta
    return out.reshape(x.shape)


def layer_norm_vjp_rows(
    x: FloatArray, grad: FloatArray, gamma: FloatArray | None, eps: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray] | None:
    """``dx, dgamma, dbeta, mean, rstd`` of :func:`~attention_from_scratch.norms.layer_norm_vjp`, or None.

    The same formulas on every row at once (:func:`layer_norm_stats`, then
    :func:`layer_norm_grads_rows`); None when the rows need the scaled path. Arrays in
    the working dtype, ``dx`` of ``x``'s shape, ``dgamma`` and ``dbeta`` (d,), ``mean``
    and ``rstd`` of ``x.shape[:-1]``; not yet checked for overflow.
    """
    stats = layer_norm_stats(x, eps)
    if stats is None:
        return None
    x_hat, mean, root = stats  # (R, d), (R, 1), (R, 1)
    rstd = 1.0 / root  # 1 / sqrt(sigma^2 + eps): finite (see layer_norm_stats)
    d_x, d_gamma, d_beta = layer_norm_grads_rows(x_hat, rstd, grad, gamma)
    batch = x.shape[:-1]
    return d_x.reshape(x.shape), d_gamma, d_beta, mean.reshape(batch), rstd.reshape(batch)


def layer_norm_bound(d: int, peak_gamma: float, peak_beta: float) -> float:
    """A bound of the computed ``x_hat * gamma + beta`` (:func:`sum_bound`'s rules).

    ``|x_hat| <= sqrt(d)``: the Cauchy-Schwarz inequality on a centred row of ``d``
    entries (twice that for the rounding of ``x_hat``).
    """
    return sum_bound(1, 2.0 * math.sqrt(d), peak_gamma) + 2.0 * peak_beta


def layer_norm_vjp_bound(d: int, rows: int, eps: float, peak_g: float, peak_gamma: float) -> float:
    """A bound of every array ``layer_norm_vjp`` computes (:func:`sum_bound`'s rules).

    From ``|x_hat| <= sqrt(d)``, ``rstd <= 1 / sqrt(eps)``, ``max |grad|`` and
    ``max |gamma|``: ``dx = rstd (g - mean(g) - x_hat mean(g x_hat))`` with
    ``g = grad * gamma``, ``dgamma`` and ``dbeta`` sums over the ``rows``; ``inf`` when
    ``eps = 0`` (nothing bounds ``rstd``).
    """
    if eps <= 0.0:
        return math.inf
    x_hat = 2.0 * math.sqrt(d)
    g = sum_bound(1, peak_g, peak_gamma)  # grad * gamma
    inner = 2.0 * (g + sum_bound(1, x_hat, sum_bound(d, g, x_hat)) + sum_bound(d, g))
    d_x = sum_bound(1, inner, 2.0 / math.sqrt(eps))
    return max(d_x, sum_bound(rows, peak_g, x_hat), sum_bound(rows, peak_g))


def layer_norm_grads_rows(
    x_hat: FloatArray,
    rstd: FloatArray,
    grad: FloatArray,
    gamma: FloatArray | None,
    *,
    proven: bool = False,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``dx (R, d), dgamma (d,), dbeta (d,)`` from the statistics of :func:`layer_norm_stats`.

    ``x_hat (R, d)`` and ``rstd (R, 1)`` in the working dtype (neither is written to),
    ``grad`` of ``R * d`` entries, ``gamma`` (d,) or None: the backward formulas of
    :func:`layer_norm_vjp_rows`, also for statistics the forward pass kept
    (:class:`~attention_from_scratch.norms.LayerNormStats`). Not yet checked for overflow;
    ``proven``: the caller has shown that nothing overflows (no ``np.errstate`` needed).
    """
    d = x_hat.shape[-1]
    g = np.ascontiguousarray(grad, dtype=x_hat.dtype).reshape(x_hat.shape)  # dL/dy: (R, d)
    column = ones(len(g), g.dtype)  # sums over the rows: column @ (R, d)
    with silenced(proven):  # otherwise reported by the caller
        g_hat = g if gamma is None else g * gamma.astype(g.dtype, copy=False)  # dL/dx_hat
        # dx = rstd (g - mean(g) - x_hat mean(g x_hat)), g = dL/dx_hat
        inner = g_hat - x_hat * (row_sums(g_hat * x_hat)[:, None] / d)
        inner -= row_sums(g_hat)[:, None] / d
        inner *= rstd
        d_gamma: FloatArray = column @ (g * x_hat)  # sum over rows of dL/dy * x_hat
        d_beta: FloatArray = column @ g  # sum over rows of dL/dy
    return inner, d_gamma, d_beta
