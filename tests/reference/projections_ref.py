"""Loop-based float64 references for the projections (independent of the package).

Written with Python loops and :func:`math.fsum` over plain lists; numpy is used only
to hold the inputs and the results, never to compute them.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


def linear_ref(x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None) -> NDArray[Any]:
    """``y[..., j] = sum_i x[..., i] * weight[i, j] + bias[j]``, element by element."""
    xs = np.asarray(x, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64).tolist()
    d_in = len(w)
    d_out = len(w[0]) if d_in else 0
    b = [0.0] * d_out if bias is None else [float(v) for v in np.asarray(bias).tolist()]
    out = np.empty((*xs.shape[:-1], d_out), dtype=np.float64)
    for index in itertools.product(*(range(s) for s in xs.shape[:-1])):
        row = [float(v) for v in xs[index].tolist()]
        for j in range(d_out):
            out[(*index, j)] = math.fsum([*(row[i] * w[i][j] for i in range(d_in)), b[j]])
    return out


def split_heads_ref(x: ArrayLike, n_heads: int) -> NDArray[Any]:
    """``heads[..., h, t, c] = x[..., t, h * d + c]`` with ``d = width / n_heads``."""
    xs = np.asarray(x)
    *batch, n, width = xs.shape
    d = width // n_heads
    out = np.empty((*batch, n_heads, n, d), dtype=xs.dtype)
    for index in itertools.product(*(range(s) for s in batch)):
        for h in range(n_heads):
            for t in range(n):
                for c in range(d):
                    out[(*index, h, t, c)] = xs[(*index, t, h * d + c)]
    return out


def merge_heads_ref(x: ArrayLike) -> NDArray[Any]:
    """``merged[..., t, h * d + c] = x[..., h, t, c]``."""
    xs = np.asarray(x)
    *batch, n_heads, n, d = xs.shape
    out = np.empty((*batch, n, n_heads * d), dtype=xs.dtype)
    for index in itertools.product(*(range(s) for s in batch)):
        for h in range(n_heads):
            for t in range(n):
                for c in range(d):
                    out[(*index, t, h * d + c)] = xs[(*index, h, t, c)]
    return out


def glorot_variance(fan_in: int, fan_out: int) -> float:
    """Variance of Glorot initialisation, ``2 / (fan_in + fan_out)``."""
    return 2.0 / (fan_in + fan_out)


def sample_variance(values: ArrayLike) -> float:
    """Population variance of the entries, ``mean((v - mean(v))^2)``, by loops."""
    flat = [float(v) for v in np.asarray(values, dtype=np.float64).ravel().tolist()]
    mean = math.fsum(flat) / len(flat)
    return math.fsum((v - mean) ** 2 for v in flat) / len(flat)
