"""Reproducible timing and memory comparisons (run with ``python -m benchmarks``).

Timings are reported, never asserted in tests. Each comparison runs the package and
its reference (SciPy, torch when installed) side by side in one process, with
interleaved repetitions, and reports medians and ratios.
"""
