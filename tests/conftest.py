"""Shared fixtures: where ../shared/data lives, and a grading pool that all grading tests reuse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$HARNESS_DATA_DIR`` or ``../shared/data`` beside the checkout (never copied into the repo)."""
    return Path(os.environ.get("HARNESS_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "math500.jsonl").is_file():
        pytest.fail(f"shared data not found at {path}: set HARNESS_DATA_DIR to the folder with math500.jsonl")
    return path


@pytest.fixture(scope="session")
def grading_pool():
    from harness.grading import GradingPool

    with GradingPool() as pool:
        yield pool
