"""Accuracy over EM iterations: runs of models named RUN/iter-N become a table and a plot, on hand-made results."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from harness.cli import app
from harness.models.loading import iteration_model, local_model_name


def write_results(folder, model: str, accuracy: float, method: str = "auto") -> None:
    folder.mkdir(parents=True)
    results = {"run": {"model": model, "task": {"name": "gsm8k", "version": "1-abc"}, "method": {"name": method},
                       "dataset_fingerprint": "f" * 16, "config_hash": "h"},
               "metrics": {"accuracy": accuracy, "accuracy_stderr": 0.05, "problems": 40, "samples_per_problem": 1},
               "config": {"temperature": 0.0, "max_tokens": 512, "limit": 40}, "tools": {"code_rate": 0.5}}
    (folder / "results.json").write_text(json.dumps(results))


def test_an_iteration_model_is_named_with_its_run():
    assert local_model_name("runs/em-7b/iter-2") == "em-7b/iter-2" == local_model_name("runs/em-7b/iter-2/")
    assert local_model_name("runs/sft") == "sft" and local_model_name("iter-3") == "iter-3"
    assert iteration_model("em-7b/iter-12") == ("em-7b", 12)
    assert iteration_model("iter-3") is None and iteration_model("em-7b/iteration-2") is None


def test_runs_of_iteration_models_get_a_curve(tmp_path):
    for run, accuracies in (("em-a", (0.50, 0.60, 0.65)), ("em-b", (0.40, 0.55))):
        for iteration, accuracy in enumerate(accuracies, start=1):
            write_results(tmp_path / "runs" / f"{run}_iter-{iteration}", f"{run}/iter-{iteration}", accuracy)
    write_results(tmp_path / "runs" / "sft", "sft", 0.45)
    result = CliRunner().invoke(app, ["leaderboard", str(tmp_path / "runs"), "--no-reference", "--out", str(tmp_path / "board.md")])
    assert result.exit_code == 0, result.output
    board = (tmp_path / "board.md").read_text()
    section = board.split("Accuracy over EM iterations", 1)[1]
    header = next(line for line in section.splitlines() if line.startswith("| EM run"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == ["EM run", "method", "task", "iter-1", "iter-2", "iter-3"]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| em-")}
    assert set(rows) == {"em-a", "em-b"}
    assert "50.0 ± 5.0 (n=40)" in rows["em-a"] and "65.0 ± 5.0 (n=40)" in rows["em-a"]
    assert rows["em-b"].rstrip().rstrip("|").rstrip().endswith("—")  # em-b has no third iteration
    assert "sft" not in section.split("\n## ", 1)[0]
    assert (tmp_path / "board-iterations.png").stat().st_size > 1000
    CliRunner().invoke(app, ["leaderboard", str(tmp_path / "runs"), "--no-reference", "--out", str(tmp_path / "board.csv")])
    with open(tmp_path / "board.iterations.csv") as handle:
        curve = [(row["run"], int(row["iteration"]), round(float(row["accuracy"]), 6)) for row in csv.DictReader(handle)]
    assert curve == [("em-a", 1, 50.0), ("em-a", 2, 60.0), ("em-a", 3, 65.0), ("em-b", 1, 40.0), ("em-b", 2, 55.0)]
