"""Shared pytest configuration: hypothesis profiles and numpy print options."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Two cores: no per-example deadline (timing is not what these tests measure).
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
