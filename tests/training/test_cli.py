"""The testbed and training commands: one-line errors for bad input, and the demos command's counts."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def test_train_sft_refuses_missing_inputs(tmp_path):
    result = runner.invoke(app, ["train-sft", "--model", str(tmp_path / "nope"), "--data", "x.jsonl", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "error: --model" in result.output


def test_train_sft_names_the_bad_line(tmp_path):
    from harness.testbed.model_init import write_tiny_model

    write_tiny_model(tmp_path / "m")
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "x", "response": "y"}\n{"prompt": "x"}\n')
    result = runner.invoke(app, ["train-sft", "--model", str(tmp_path / "m"), "--data", str(data), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and f"error: {data}:2:" in result.output


def test_model_init_refuses_an_unknown_preset(tmp_path):
    result = runner.invoke(app, ["model", "init", "--preset", "huge", "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "error: unknown preset 'huge'" in result.output


def test_demos_writes_the_requested_mix(tmp_path):
    path = tmp_path / "demos.jsonl"
    result = runner.invoke(app, ["testbed", "demos", "-o", str(path), "--size", "400", "--code-ratio", "0.25", "--forced-share", "0"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 400 and all(row["method"] == "auto" for row in rows)
    assert 60 < sum(row["style"] == "code" for row in rows) < 140
