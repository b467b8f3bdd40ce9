"""Shared fixtures: a throw-away store, the bundled traces folder, the Who&When data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from attrib.paths import traces_dir, who_and_when_dir  # noqa: E402


@pytest.fixture
def tmp_store(tmp_path: Path):
    """An empty store in a temporary folder (closed after the test)."""
    from attrib.store import open_store

    with open_store(tmp_path / "test.duckdb") as st:
        yield st


@pytest.fixture(scope="session")
def bundled() -> Path:
    """The repo's traces/ folder with the hand-made fixtures."""
    return traces_dir()


@pytest.fixture(scope="session")
def whowhen_dir() -> Path:
    """The real Who&When benchmark (../shared/data/who_and_when); skips if this checkout has none."""
    d = who_and_when_dir()
    if not (d / "Algorithm-Generated").is_dir():
        pytest.skip(f"Who&When data not found at {d} (set ATTRIB_WHO_AND_WHEN)")
    return d
