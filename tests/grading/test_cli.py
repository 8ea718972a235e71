"""`harness grade` keeps its contract: JSONL in, JSONL out (input + correct, extracted, status), atomic, clear errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_grade_writes_input_plus_verdicts(tmp_path):
    cases = [
        {"pred": "so \\boxed{025}", "gold": "25", "task": "aime24", "id": 1},
        {"pred": "\\frac{1}{2}", "gold": "0.5"},
        {"pred": "I have no idea how to solve this one.", "gold": "7", "task": "gsm8k"},
    ]
    _write(tmp_path / "in.jsonl", [json.dumps(c) for c in cases])
    result = runner.invoke(app, ["grade", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows[:1]] == [1]
    assert [(r["correct"], r["status"]) for r in rows] == [(True, "correct"), (True, "correct"), (False, "no_answer")]
    assert rows[0]["extracted"] == "025"


def test_malformed_line_names_its_number_and_writes_nothing(tmp_path):
    _write(tmp_path / "in.jsonl", ['{"pred": "1", "gold": "1"}', "{not json"])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["grade", "--input", str(tmp_path / "in.jsonl"), "--output", str(out)])
    assert result.exit_code != 0
    assert ":2:" in result.output and "not valid JSON" in result.output
    assert not out.exists()


def test_missing_fields_and_unknown_task_are_errors(tmp_path):
    for bad in ('{"pred": "1"}', '{"pred": "1", "gold": "1", "task": "mmlu"}'):
        _write(tmp_path / "in.jsonl", [bad])
        result = runner.invoke(app, ["grade", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl")])
        assert result.exit_code != 0 and ":1:" in result.output


def test_existing_output_survives_a_failed_run(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    _write(tmp_path / "in.jsonl", ["[1, 2]"])
    runner.invoke(app, ["grade", "--input", str(tmp_path / "in.jsonl"), "--output", str(out)])
    assert out.read_text() == "previous results\n"
