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


def _grade(tmp_path, *extra, output=None):
    output = output or tmp_path / "out.jsonl"
    return runner.invoke(app, ["grade", "--input", str(tmp_path / "in.jsonl"), "--output", str(output), *extra])


def _one_error(result) -> bool:
    return result.exit_code != 0 and len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1


def test_an_output_folder_and_a_zero_deadline_are_errors_not_tracebacks(tmp_path):
    _write(tmp_path / "in.jsonl", ['{"pred": "1", "gold": "1"}'])
    (tmp_path / "folder").mkdir()
    result = _grade(tmp_path, output=tmp_path / "folder")
    assert _one_error(result) and "is a folder" in result.output
    result = _grade(tmp_path, "--deadline", "0")
    assert _one_error(result) and "--deadline" in result.output and not (tmp_path / "out.jsonl").exists()


def test_input_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b'{"pred": "1", "gold": "1"}\n{"pred": "caf\xe9", "gold": "1"}\n')
    result = _grade(tmp_path)
    assert _one_error(result) and f"{tmp_path / 'in.jsonl'}:2: not UTF-8" in result.output


def test_nan_and_infinity_never_reach_the_output(tmp_path):
    for bad in ('{"pred": "1", "gold": NaN}', '{"pred": "1", "gold": "1", "score": -Infinity}', '{"pred": 1e999, "gold": "1"}'):
        _write(tmp_path / "in.jsonl", ['{"pred": "1", "gold": "1"}', bad])
        result = _grade(tmp_path)
        assert _one_error(result) and ":2:" in result.output, result.output
        assert not (tmp_path / "out.jsonl").exists()


def test_a_null_gold_is_unscorable(tmp_path):
    _write(tmp_path / "in.jsonl", ['{"pred": "\\\\boxed{1}", "gold": null}', '{"pred": "2", "gold": "2"}'])
    result = _grade(tmp_path)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["correct"], r["status"]) for r in rows] == [(None, "gold_unscorable"), (True, "correct")]
    assert "100.0% correct of 1 scorable" in result.output
