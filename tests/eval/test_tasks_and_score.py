"""`harness tasks` sizes from the data folder `harness eval` would use, `harness score` over a tree of runs,
and run files that anyone the umask allows can read (no model: a scripted one answers)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.eval.tasks import available_tasks, load_samples, load_task

from .scripted import ScriptedBackend

runner = CliRunner()
CHECKOUT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
QUESTIONS = [{"id": "a", "question": "What is 2+2?", "answer": "4"}, {"id": "b", "question": "What is 3+3?", "answer": "6"}]


def size_column(output: str) -> dict[str, str]:
    rows = [line.split("|") for line in output.splitlines() if line.startswith("| ") and not line.startswith("| task ")]
    return {cells[1].strip(): cells[2].strip() for cells in rows}


@pytest.mark.skipif(not (CHECKOUT_DATA / "gsm8k_test.jsonl").is_file(), reason="needs ../shared/data beside the checkout")
def test_tasks_counts_the_data_beside_the_checkout_without_being_told(monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0, result.output
    sizes = size_column(result.output)
    lines = [line for line in (CHECKOUT_DATA / "gsm8k_test.jsonl").read_text().splitlines() if line.strip()]
    assert sizes["gsm8k"] == str(len(lines))
    assert f"data folder: {CHECKOUT_DATA}" in result.output


def test_tasks_says_where_it_looked_when_it_cannot_count(monkeypatch, tmp_path):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    nowhere = tmp_path / "shared" / "data"
    monkeypatch.setattr("harness.eval.tasks.checkout_data_dir", lambda: nowhere)
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0, result.output
    sizes = size_column(result.output)
    for name in available_tasks():
        spec = load_task(name)
        expected = "?" if spec.local_file else str(len(load_samples(spec)[0]))  # generated tasks need no data
        assert sizes[name] == expected, name
    assert "--data-dir" in result.output and "$HARNESS_DATA_DIR" in result.output and str(nowhere) in result.output


def test_tasks_names_a_given_data_folder_that_does_not_exist(tmp_path):
    result = runner.invoke(app, ["tasks", "--data-dir", str(tmp_path / "missing")])
    assert result.exit_code == 0 and f"--data-dir {tmp_path / 'missing'} (does not exist)" in result.output
    assert size_column(result.output)["gsm8k"] == "?"


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr("harness.models.load_backend", lambda spec, args: ScriptedBackend(lambda prompt: "The answer is \\boxed{4}."))


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def evaluate(tmp_path, method: str, task_name: str = "task"):
    task = tmp_path / f"{task_name}.jsonl"
    task.write_text("".join(json.dumps(row) + "\n" for row in QUESTIONS))
    result = runner.invoke(app, ["eval", "--model", "hf:scripted", "--task", str(task), "--id-field", "id", "--method", method,
                                 "--output-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output


def test_score_grades_every_run_under_a_folder_one_line_each(tmp_path, scripted):
    for method in ("cot", "tir"):
        evaluate(tmp_path, method)
    evaluate(tmp_path, "cot", task_name="other")
    result = runner.invoke(app, ["score", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| ") and not line.startswith("| run ")]
    model = tmp_path / "runs" / "scripted"
    assert [row.split("|")[1].strip() for row in rows] == [str(model / "other" / "cot"), str(model / "task" / "cot"),
                                                           str(model / "task" / "tir")]
    assert all("50.0" in row for row in rows)  # each run: "4" is right for one of the two questions


def test_score_of_a_folder_without_runs_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["score", str(tmp_path / "empty")])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        f"error: no run under {tmp_path / 'empty'} (no run.json in it or below it): run `harness eval` first"]


def test_score_reports_a_broken_run_and_still_scores_the_others(tmp_path, scripted):
    for method in ("cot", "tir"):
        evaluate(tmp_path, method)
    broken = tmp_path / "runs" / "scripted" / "task" / "cot" / "run.json"
    broken.write_text("{not json")
    result = runner.invoke(app, ["score", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert any(line.startswith("error:") and "task/cot" in line for line in result.output.splitlines())
    assert any(line.startswith("| ") and line.split("|")[1].strip().endswith("task/tir") for line in result.output.splitlines())


def test_run_files_get_the_mode_a_plain_write_would(tmp_path, scripted, umask_027):
    evaluate(tmp_path, "cot")
    directory = tmp_path / "runs" / "scripted" / "task" / "cot"
    for name in ("run.json", "samples.jsonl", "results.json"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o640, name
    (directory / "results.json").chmod(0o664)
    assert runner.invoke(app, ["score", str(directory)]).exit_code == 0
    assert stat.S_IMODE((directory / "results.json").stat().st_mode) == 0o664  # a rewrite keeps the file's own mode


@pytest.mark.skipif(not (CHECKOUT_DATA / "gsm8k_test.jsonl").is_file(), reason="needs ../shared/data beside the checkout")
def test_eval_reads_and_records_the_same_data_folder_tasks_counts(tmp_path, scripted, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    result = runner.invoke(app, ["eval", "--model", "hf:scripted", "--task", "gsm8k", "--limit", "1", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "scripted" / "gsm8k" / "cot" / "run.json").read_text())
    assert info["config"]["data_dir"] == str(CHECKOUT_DATA)
