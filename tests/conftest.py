"""Shared pytest configuration: hypothesis profiles and the ``browser`` fixture.

The ``browser`` fixture (headless Chromium through Playwright, see ``tests/browser.py``)
is imported here so that every test module can ask for it.

``default``
    30 examples per property: every property runs on every ``pytest``, and the whole
    suite stays fast (the properties were most of its time at hypothesis' 100).
``thorough``
    500 examples per property, for a long run before a release:
    ``HYPOTHESIS_PROFILE=thorough pytest``.
``ci``
    the default, derandomized, so that a CI run is reproducible.

No profile has a per-example deadline: the machine has two cores, and timing is not
what these tests measure.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from tests.browser import browser

__all__ = ["browser"]  # the fixture, for every test module

settings.register_profile(
    "default",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=500)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
