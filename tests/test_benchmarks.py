"""The benchmarks compare equal work: the references compute what the package computes.

Timings are never asserted (they live in ``benchmarks/``); what is checked here is
that each plain NumPy reference of ``benchmarks/training.py`` gives the package's
numbers, so that a ratio of their times is a ratio for the same work.
"""

from __future__ import annotations

import numpy as np

from benchmarks.training import COMPARISONS, EQUAL_WORK_TOL, step_difference


def test_training_step_matches_the_plain_numpy_step() -> None:
    # the loss and every updated parameter, after one step of the encoder block
    assert step_difference() <= EQUAL_WORK_TOL
    assert step_difference(seed=5) <= EQUAL_WORK_TOL


def test_every_comparison_builds_and_its_sides_agree() -> None:
    for _, make in COMPARISONS:
        comparison = make()
        assert all(value <= EQUAL_WORK_TOL for value in comparison.accuracy.values())
        assert comparison.count >= 1
        ours, reference = comparison.ours(), comparison.reference()
        if isinstance(ours, np.ndarray):  # the multi-head row returns both outputs
            np.testing.assert_allclose(ours, np.asarray(reference), rtol=0, atol=1e-12)
