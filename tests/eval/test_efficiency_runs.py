"""Efficiency metrics in a real run's results.json and metacognition report, and `harness score` adding them to
a run written before they existed (tests/eval/tool_runs.py, the `tool_runs` fixture: a scripted model that uses its tool well and badly)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def test_results_hold_the_efficiency_of_the_stored_samples(tool_runs, tmp_path):
    runs = tool_runs
    efficiency = json.loads((runs / "tir" / "results.json").read_text())["efficiency"]
    assert (efficiency["responses"], efficiency["correct"], efficiency["cells"]) == (3, 1, 2)
    assert efficiency["tool_error_rate_cell"] == 0.0 and efficiency["tool_productivity"] == 0.5
    assert (efficiency["tool_ignored"], efficiency["tool_ignored_rate"]) == (1, 1.0)
    assert (efficiency["tool_followed_wrongly"], efficiency["tool_followed_wrongly_rate"]) == (1, 1.0)
    assert efficiency["tool_tokens_per_correct"] > 0  # the two cells' output, over the one right answer
    cot = json.loads((runs / "cot" / "results.json").read_text())["efficiency"]
    assert cot["cells"] == 0 and cot["tool_productivity"] is None and cot["tool_error_rate_cell"] is None
    report = json.loads((runs / "metacognition.json").read_text())
    assert report["efficiency"]["tir"] == {**efficiency, "by": {}} and report["efficiency"]["cot"]["cells"] == 0


def test_score_adds_the_metrics_to_a_run_written_before_them(tool_runs, tmp_path):
    runs = tool_runs
    results_file = runs / "tir" / "results.json"
    old = json.loads(results_file.read_text())
    expected = old.pop("efficiency")
    results_file.write_text(json.dumps(old))
    result = runner.invoke(app, ["score", str(runs / "tir"), "--columns", "efficiency"])
    assert result.exit_code == 0, result.output
    assert json.loads(results_file.read_text())["efficiency"] == expected
    header, _, row = result.output.splitlines()[:3]
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["productivity"] == "0.50" and cells["ignored (%)"] == "1 (100.0%)" and cells["followed wrongly (%)"] == "1 (100.0%)"
    assert cells["tool err % cells"] == "0.0"


def test_score_refuses_an_unknown_column_set(tmp_path):
    result = runner.invoke(app, ["score", str(tmp_path), "--columns", "speed"])
    assert result.exit_code != 0 and "unknown column set 'speed'" in result.output
