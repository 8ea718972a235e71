"""`harness leaderboard --columns efficiency`: the efficiency table from each run's results.json, off by default,
and a run whose results.json predates the metrics flagged with the command that adds them."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from harness.cli import app

from ..eval.tool_runs import make_runs, writable_copy

runner = CliRunner()


@pytest.fixture(scope="module")
def runs_once(tmp_path_factory):
    return make_runs(tmp_path_factory.mktemp("tool-runs"))


@pytest.fixture
def tool_runs(runs_once, tmp_path):
    return writable_copy(runs_once, tmp_path)


def test_efficiency_columns_switched_on(tool_runs, tmp_path):
    runs = tool_runs
    plain = runner.invoke(app, ["leaderboard", str(runs), "--out", str(tmp_path / "plain.md")])
    assert plain.exit_code == 0, plain.output
    assert "Efficiency and tool trust" not in (tmp_path / "plain.md").read_text()

    result = runner.invoke(app, ["leaderboard", str(runs), "--out", str(tmp_path / "board.md"), "--columns", "efficiency"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "board.md").read_text()
    assert "## Efficiency and tool trust" in text and "--columns efficiency" in text  # the command on the board rebuilds it
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines()
            if line.startswith("| scripted ")}
    #            model, method, task, bucket, n, err cells, err resp, productivity, model tok, tool tok, s, ignored, followed
    assert rows["tir"][3:5] + rows["tir"][5:8] + rows["tir"][11:] == ["all", "3", "0.0", "0.0", "0.50", "1 (100.0%)", "1 (100.0%)"]
    assert rows["cot"][5:8] == ["—", "—", "—"]  # no cell: undefined, not 0

    assert runner.invoke(app, ["leaderboard", str(runs), "--out", str(tmp_path / "b.csv"), "--columns", "efficiency"]).exit_code == 0
    with open(tmp_path / "b.efficiency.csv", newline="") as handle:
        by_method = {row["method"]: row for row in csv.DictReader(handle)}
    assert float(by_method["tir"]["tool_productivity"]) == 0.5 and by_method["cot"]["tool_productivity"] == ""


def test_a_run_from_before_the_metrics_is_flagged(tool_runs, tmp_path):
    runs = tool_runs
    results_file = runs / "tir" / "results.json"
    results = json.loads(results_file.read_text())
    del results["efficiency"]
    results_file.write_text(json.dumps(results))
    result = runner.invoke(app, ["leaderboard", str(runs / "tir"), "--out", str(tmp_path / "board.md"), "--columns", "efficiency"])
    assert result.exit_code == 0, result.output
    assert "`harness score` on the run adds them" in (tmp_path / "board.md").read_text()


def test_unknown_column_set_is_one_clear_error(tmp_path):
    result = runner.invoke(app, ["leaderboard", str(tmp_path), "--columns", "speed"])
    assert result.exit_code != 0 and "unknown column set 'speed'" in result.output
