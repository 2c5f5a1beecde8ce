"""Attention: q, k, v and embeddings checked together (private; see :mod:`attention_from_scratch._checks`)."""

from __future__ import annotations

import numpy as np

from attention_from_scratch._checks.arrays import as_float_array
from attention_from_scratch._checks.finite import peak
from attention_from_scratch._checks.shapes import at_least_ndim, check_same_dtype
from attention_from_scratch.arrays import FloatArray

__all__ = ["check_embeddings", "check_qkv"]


def check_qkv(
    q: object, k: object, v: object
) -> tuple[FloatArray, FloatArray, FloatArray, tuple[int, ...], float, float]:
    """Check q, k, v once; return them, the broadcast batch shape, max|q| max|k| and max|v|."""
    q_arr, k_arr, v_arr = as_float_array(q, "q"), as_float_array(k, "k"), as_float_array(v, "v")
    check_same_dtype(q=q_arr, k=k_arr, v=v_arr)
    for name, arr in (("q", q_arr), ("k", k_arr), ("v", v_arr)):
        at_least_ndim(arr, 2, name, "(..., tokens, features)")
    if q_arr.shape[-1] != k_arr.shape[-1]:
        msg = f"q and k must share the last dimension d_k: q {q_arr.shape}, k {k_arr.shape}"
        raise ValueError(msg)
    if k_arr.shape[-2] != v_arr.shape[-2]:
        msg = f"k and v must have the same number of keys m: k {k_arr.shape}, v {v_arr.shape}"
        raise ValueError(msg)
    if k_arr.shape[-2] == 0:
        msg = f"attention needs at least one key (m = 0): k {k_arr.shape}"
        raise ValueError(msg)
    if q_arr.shape[-1] == 0:
        msg = f"q and k have no features (d_k = 0): q {q_arr.shape}, k {k_arr.shape}"
        raise ValueError(msg)
    try:
        batch = np.broadcast_shapes(q_arr.shape[:-2], k_arr.shape[:-2], v_arr.shape[:-2])
    except ValueError:
        msg = (
            "the batch dimensions of q, k and v do not broadcast: "
            f"q {q_arr.shape}, k {k_arr.shape}, v {v_arr.shape}"
        )
        raise ValueError(msg) from None
    peak_qk = peak(q_arr, "q") * peak(k_arr, "k")
    return q_arr, k_arr, v_arr, batch, peak_qk, peak(v_arr, "v")


def check_embeddings(x: object, name: str, w_q: FloatArray) -> tuple[FloatArray, float]:
    """Validate ``x`` as ``(..., n, d_model)`` rows in the dtype of the weight ``w_q``.

    ``d_model`` is the number of rows of ``w_q`` (d_model, h d_k); ``x`` must be finite.
    Returns ``x`` and ``max |x|``, which its finiteness check finds (:func:`peak`).
    """
    arr = as_float_array(x, name)
    at_least_ndim(arr, 2, name, "(..., n, d_model)")
    if arr.shape[-1] != w_q.shape[0]:
        msg = (
            f"{name}'s last dimension must be d_model = {w_q.shape[0]} (the rows of w_q): "
            f"{name} {arr.shape}, w_q {w_q.shape}"
        )
        raise ValueError(msg)
    if arr.dtype != w_q.dtype:
        msg = (
            f"{name} and params must share one floating dtype, "
            f"got {name} {arr.dtype}, params {w_q.dtype}"
        )
        raise TypeError(msg)
    return arr, peak(arr, name)
