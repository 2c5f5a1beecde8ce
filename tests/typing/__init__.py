"""Static typing tests: checked by mypy (``files`` in pyproject) and run by pytest."""
