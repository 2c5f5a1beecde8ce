"""Independent loop-based float64 references.

Written from the formulas with Python loops and :mod:`math`, never importing the
package's vectorised code, so that a bug there cannot hide in the reference too.
One file per package module.
"""
