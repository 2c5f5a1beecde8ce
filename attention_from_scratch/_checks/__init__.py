"""Input validation shared by every public function (private).

Every public routine validates its inputs once, here, at the public boundary,
and then works on plain floating-point arrays. The policy is the one written in
``docs/guarantees.md``: an error names the argument and shows the offending shape,
dtype or index; nothing returns NaN silently.

The rules, in one place:

* ``None``, strings, object arrays, masked arrays -> :class:`TypeError`;
* ragged nested lists -> :class:`ValueError`;
* ``bool`` -> :class:`TypeError` (a boolean array passed as data is probably a mask);
* complex -> :class:`TypeError`;
* integers -> cast to ``float64`` (the SciPy rule), Python ints beyond int64 too;
* ``float16``/``float32``/``float64`` -> kept as they are;
* NaN or an infinity -> :class:`ValueError` naming the argument and the first bad index;
* a finite input whose exact result does not fit the dtype -> :class:`FloatingPointError`
  advising a wider dtype or rescaling (never ``inf`` with a ``RuntimeWarning``);
* arithmetic runs on C-contiguous arrays in the working dtype (:func:`as_working`), so a
  result never depends on the memory layout of its input.
"""

from __future__ import annotations

from attention_from_scratch._checks.arrays import (
    FLOAT_DTYPES,
    as_bool_mask,
    as_float_array,
    as_int_array,
    as_working,
    first_index,
    float_dtype,
    frozen,
    read_only,
    working_dtype,
)
from attention_from_scratch._checks.attention import check_embeddings, check_qkv
from attention_from_scratch._checks.finite import (
    FLAT_ENTRIES,
    all_finite,
    arrays_finite,
    arrays_peak,
    check_cast,
    check_finite,
    check_row_max,
    every,
    every_finite,
    finite_result,
    finite_results,
    fits,
    largest,
    largest_entry,
    named_peak,
    overflow_advice,
    peak,
    silenced,
    sum_bound,
)
from attention_from_scratch._checks.indices import batch_index, check_index, int_index
from attention_from_scratch._checks.scalars import (
    as_generator,
    check_bool,
    check_instance,
    finite_real,
    non_negative_finite,
    non_negative_int,
    positive_finite,
    positive_int,
)
from attention_from_scratch._checks.shapes import (
    as_gradient,
    at_least_ndim,
    broadcast_to_shape,
    check_same_dtype,
    check_same_shape,
    gradient_peak,
    normalize_axis,
)
from attention_from_scratch.arrays import BoolArray, F, Float64Like, FloatArray, IntArray

__all__ = [
    "FLAT_ENTRIES",
    "FLOAT_DTYPES",
    "BoolArray",
    "F",
    "Float64Like",
    "FloatArray",
    "IntArray",
    "all_finite",
    "arrays_finite",
    "arrays_peak",
    "as_bool_mask",
    "as_float_array",
    "as_generator",
    "as_gradient",
    "as_int_array",
    "as_working",
    "at_least_ndim",
    "batch_index",
    "broadcast_to_shape",
    "check_bool",
    "check_cast",
    "check_embeddings",
    "check_finite",
    "check_index",
    "check_instance",
    "check_qkv",
    "check_row_max",
    "check_same_dtype",
    "check_same_shape",
    "every",
    "every_finite",
    "finite_real",
    "finite_result",
    "finite_results",
    "first_index",
    "fits",
    "float_dtype",
    "frozen",
    "gradient_peak",
    "int_index",
    "largest",
    "largest_entry",
    "named_peak",
    "non_negative_finite",
    "non_negative_int",
    "normalize_axis",
    "overflow_advice",
    "peak",
    "positive_finite",
    "positive_int",
    "read_only",
    "silenced",
    "sum_bound",
    "working_dtype",
]
