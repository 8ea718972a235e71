"""Fixtures of the eval tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .tool_runs import make_runs, writable_copy


@pytest.fixture(scope="package")
def tool_runs_once(tmp_path_factory) -> Path:
    return make_runs(tmp_path_factory.mktemp("tool-runs"))


@pytest.fixture
def tool_runs(tool_runs_once, tmp_path) -> Path:
    return writable_copy(tool_runs_once, tmp_path)
