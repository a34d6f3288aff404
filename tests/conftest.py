"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets (MNIST, CIFAR-10 npz, FEMNIST) kept outside the repo, never copied in.

    Found via ``$TESTBED_SHARED_DATA``, else ``<repo>/../shared/data``; tests using it are
    skipped when it is absent.
    """
    env = os.environ.get("TESTBED_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set TESTBED_SHARED_DATA to the shared data directory)")
    return path
