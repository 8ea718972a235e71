"""Where `harness leaderboard --out` writes (a folder, a board file, or a prefix that gets the extension)
and with what mode (the one a plain write gives, so a board in a shared folder is readable)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from typer.testing import CliRunner

from harness.cli import app

from ..eval.scripted import ScriptedBackend

runner = CliRunner()
QUESTIONS = [{"id": "a", "question": "What is 2+2?", "answer": "4"}, {"id": "b", "question": "What is 3+3?", "answer": "6"}]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """cot and tir runs of a scripted model that always answers 4."""
    root = tmp_path_factory.mktemp("board-runs")
    task = root / "task.jsonl"
    task.write_text("".join(json.dumps(row) + "\n" for row in QUESTIONS))
    patch = pytest.MonkeyPatch()
    patch.setattr("harness.models.load_backend", lambda spec, args: ScriptedBackend(lambda prompt: "The answer is \\boxed{4}."))
    try:
        for method in ("cot", "tir"):
            result = runner.invoke(app, ["eval", "--model", "hf:scripted", "--task", str(task), "--id-field", "id",
                                         "--method", method, "--output-dir", str(root / "runs")])
            assert result.exit_code == 0, result.output
    finally:
        patch.undo()
    return root / "runs"


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def leaderboard(runs, *args) -> list[str]:
    result = runner.invoke(app, ["leaderboard", str(runs), "--no-reference", *map(str, args)])
    assert result.exit_code == 0, result.output
    return [line.removeprefix("wrote ") for line in result.output.splitlines() if line.startswith("wrote ")]


def test_a_folder_gets_leaderboard_dot_format(runs, tmp_path):
    (tmp_path / "boards").mkdir()
    written = leaderboard(runs, "--out", tmp_path / "boards")
    assert written[0] == str(tmp_path / "boards" / "leaderboard.md") and (tmp_path / "boards" / "leaderboard.md").is_file()
    written = leaderboard(runs, "--format", "html", "--out", f"{tmp_path / 'new'}/")
    assert written[0] == str(tmp_path / "new" / "leaderboard.html")


def test_a_name_without_a_format_extension_is_a_prefix(runs, tmp_path):
    written = leaderboard(runs, "--format", "csv", "--out", tmp_path / "board")
    assert written[0] == str(tmp_path / "board.csv")
    assert all(path.startswith(str(tmp_path / "board.")) and path.endswith(".csv") for path in written)
    assert not (tmp_path / "board").exists()


def test_the_extension_of_out_picks_the_format(runs, tmp_path):
    assert leaderboard(runs, "--out", tmp_path / "board.html")[0] == str(tmp_path / "board.html")
    assert (tmp_path / "board.html").read_text().lstrip().lower().startswith("<!doctype html")


def test_an_extension_that_contradicts_format_is_one_clear_error(runs, tmp_path):
    result = runner.invoke(app, ["leaderboard", str(runs), "--format", "csv", "--out", str(tmp_path / "board.md")])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        f"error: --out {tmp_path / 'board.md'} names a .md file but --format is csv; make them agree or drop one"]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("fmt", ["md", "csv", "html"])
def test_boards_get_the_mode_a_plain_write_would(runs, tmp_path, umask_027, fmt):
    written = leaderboard(runs, "--format", fmt, "--out", tmp_path / "board")
    assert written
    for path in written:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640, path
    os.chmod(written[0], 0o644)
    leaderboard(runs, "--format", fmt, "--out", tmp_path / "board")
    assert stat.S_IMODE(os.stat(written[0]).st_mode) == 0o644  # rewriting keeps the board's own mode
