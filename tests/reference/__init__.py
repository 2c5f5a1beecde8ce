"""Independent loop-based float64 references.

Written from the formulas with Python loops and :mod:`math`, never importing the
package's vectorised code, so that a bug there cannot hide in the reference too.
One file per package module, and ``all_ref.py``, which gives every public op a
reference with the package's signature (the cross-package property tests use it).
"""
