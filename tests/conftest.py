"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One torch thread, set before torch is imported so subprocesses (CLI smoke tests) inherit
# it: the suite runs on small shared machines where a second thread mostly waits for a
# core (tests/engine took ~250 s with 2 threads on 2 busy cores, ~17 s with one).
# TESTBED_TEST_THREADS overrides it.
TEST_THREADS = os.environ.get("TESTBED_TEST_THREADS", "1")
os.environ["OMP_NUM_THREADS"] = TEST_THREADS


def pytest_configure(config) -> None:
    import torch

    torch.set_num_threads(int(TEST_THREADS))


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
