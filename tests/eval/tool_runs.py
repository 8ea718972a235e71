"""cot, tir and auto runs of a scripted model that writes code and then trusts or ignores what it printed,
made by the real `harness eval` pipeline (local sandbox); shared by the score and leaderboard tests.

Three questions: "1+1" is answered 2 without code (right); on "2+2" a cell prints 4 (the gold) and the
model answers 5 (tool ignored); on "3+3" the same cell prints 4 and the model answers 4 (followed wrongly).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

from .scripted import ScriptedBackend

QUESTIONS = [{"id": "a", "question": "What is 1+1?", "answer": "2"}, {"id": "b", "question": "What is 2+2?", "answer": "4"},
             {"id": "c", "question": "What is 3+3?", "answer": "6"}]


def reply(conversation: str) -> str:
    if "1+1" in conversation:
        return "The answer is \\boxed{2}."
    if "```output" not in conversation:
        return "```python\nprint(2 + 2)\n```\n```output"
    return "The answer is \\boxed{5}." if "2+2" in conversation else "The answer is \\boxed{4}."


def make_runs(root: Path) -> Path:
    """The three runs under ``root/runs/scripted/task/<method>``; returns that task folder."""
    task = root / "task.jsonl"
    task.write_text("".join(json.dumps(row) + "\n" for row in QUESTIONS))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("harness.models.load_backend", lambda spec, args: ScriptedBackend(reply))
        for method in ("cot", "tir", "auto"):
            result = CliRunner().invoke(app, ["eval", "--model", "hf:scripted", "--task", str(task), "--id-field", "id",
                                              "--method", method, "--output-dir", str(root / "runs")])
            assert result.exit_code == 0, result.output
    return root / "runs" / "scripted" / "task"


def writable_copy(runs: Path, tmp_path: Path) -> Path:
    """A copy of the runs that one test may change."""
    return Path(shutil.copytree(runs, tmp_path / "task"))
