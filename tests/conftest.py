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


@pytest.fixture(scope="session")
def warmed_testbed_model(tmp_path_factory) -> Path:
    """The tiny model after the documented one-command warm-up (~4 min on 2 cores, once per session).

    ``$HARNESS_TESTBED_MODEL`` names an already warmed-up folder to reuse instead (local iteration)."""
    import subprocess
    import sys

    if os.environ.get("HARNESS_TESTBED_MODEL"):
        return Path(os.environ["HARNESS_TESTBED_MODEL"])
    output = tmp_path_factory.mktemp("testbed")
    subprocess.run([sys.executable, "-m", "harness.cli_main", "testbed", "warmup", "--output", str(output)],
                   check=True, stdout=subprocess.DEVNULL)
    return output / "sft"
