"""`harness leaderboard` on runs written by the real eval pipeline (the `runs` fixture, conftest.py):
every number is checked against the run's own results.json or metacognition.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

MODEL = "SmolLM2-135M-Instruct"
runner = CliRunner()


def leaderboard(*args: str):
    return runner.invoke(app, ["leaderboard", *map(str, args)])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def board_csv(runs) -> Path:
    out = runs["root"] / "boards" / "main.csv"
    result = leaderboard(runs["main"], "--format", "csv", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_main_table_holds_each_run_as_written_by_eval(runs, board_csv):
    measured = [r for r in read_csv(board_csv) if r["kind"] == "measured"]
    assert {(r["method"], r["task"]) for r in measured} == {("cot", "gsm8k"), ("cot", "math500"), ("tir", "math500"), ("auto", "math500")}
    for row in measured:
        expected = results(runs["main"] / MODEL / row["task"] / row["method"])
        assert float(row["accuracy"]) == pytest.approx(100 * expected["metrics"]["accuracy"])
        assert float(row["stderr"]) == pytest.approx(100 * expected["metrics"]["accuracy_stderr"])
        assert int(row["n"]) == expected["metrics"]["problems"] == 2
        assert float(row["code_rate"]) == pytest.approx(100 * expected["tools"]["code_rate"])
        assert float(row["tokens_per_problem"]) == pytest.approx(expected["tools"]["tokens_per_problem"])
        assert row["flags"] == "" and row["protocol"] == "greedy, 16 tokens"


def test_adaptive_vs_fixed_subtracts_the_best_fixed_mode(runs, board_csv):
    adaptive = read_csv(board_csv.with_name("main.adaptive.csv"))
    assert {r["task"] for r in adaptive} == {"math500"}  # gsm8k has a cot run only
    for row in adaptive:
        accuracy = {m: 100 * results(runs["main"] / MODEL / row["task"] / m)["metrics"]["accuracy"] for m in ("cot", "tir", "auto")}
        best = "cot" if accuracy["cot"] >= accuracy["tir"] else "tir"
        assert row["best_fixed"] == best
        assert float(row["auto_minus_best_fixed"]) == pytest.approx(accuracy["auto"] - accuracy[best])
        assert row["paired_problems"] == "2" and row["flags"] == ""


def test_metacognition_table_agrees_with_the_eval_report(runs, board_csv):
    rows = {r["task"]: r for r in read_csv(board_csv.with_name("main.metacognition.csv"))}
    assert set(rows) == {"math500"}
    for task in ("math500",):
        report = json.loads((runs["main"] / MODEL / task / "metacognition.json").read_text())
        row = rows[task]
        assert {k: int(row[k]) for k in report["counts"]} == report["counts"]
        assert float(row["oracle_accuracy"]) == pytest.approx(100 * report["oracle_accuracy"])
        assert int(row["problems"]) == report["problems"] == 2


def test_reported_rows_stay_apart_from_measured_ones(runs, board_csv):
    rows = read_csv(board_csv)
    reported = {(r["model"], r["method"], r["task"]): r for r in rows if r["kind"] == "reported"}
    assert float(reported[("Qwen2.5-Base-7B", "cot", "gsm8k")]["accuracy"]) == 84.88
    assert float(reported[("AutoCode-Qwen2.5-7B (EM)", "auto", "math500")]["accuracy"]) == 71.4
    assert float(reported[("Qwen2.5-Math-7B-Instruct", "cot", "math500")]["accuracy"]) == 74.8
    assert float(reported[("Qwen2.5-Math-7B-Instruct", "tir", "math500")]["accuracy"]) == 78.8
    assert all(r["protocol"] and r["source"] and r["n"] == "" for r in reported.values())
    # Only the board's tasks: AIME24 numbers exist in the data but no run here is on AIME24.
    assert {key[2] for key in reported} == {"gsm8k", "math500"}
    assert {r["model"] for r in read_csv(board_csv.with_name("main.adaptive.csv"))} == {MODEL}
    out = board_csv.with_name("no-ref.csv")
    assert leaderboard(runs["main"], "--format", "csv", "--out", out, "--no-reference").exit_code == 0
    assert {r["kind"] for r in read_csv(out)} == {"measured"}


def test_a_different_task_version_is_flagged_not_merged(runs):
    out = runs["root"] / "boards" / "mixed.csv"
    assert leaderboard(runs["main"], runs["other"], "--format", "csv", "--out", out).exit_code == 0
    rows = [r for r in read_csv(out) if r["kind"] == "measured"]
    cot_math = [r for r in rows if r["method"] == "cot" and r["task"] == "math500"]
    assert len(cot_math) == 2 and {r["variant"] for r in cot_math} == {"0", "1"}
    assert len({r["task_version"] for r in cot_math}) == 2
    assert all("different task versions" in r["flags"] for r in rows if r["task"] == "math500")
    assert all(r["flags"] == "" for r in rows if r["task"] == "gsm8k")
    adaptive = {r["task"]: r for r in read_csv(out.with_name("mixed.adaptive.csv"))}
    assert adaptive["math500"]["auto_minus_best_fixed"] == "" and "2 cot runs" in adaptive["math500"]["flags"]
    metacognition = {r["task"]: r for r in read_csv(out.with_name("mixed.metacognition.csv"))}
    assert metacognition["math500"]["selection_accuracy"] == "" and metacognition["math500"]["flags"]
    md = runs["root"] / "boards" / "mixed.md"
    assert leaderboard(runs["main"], runs["other"], "--format", "md", "--out", md).exit_code == 0
    text = md.read_text()
    assert "| cot #2 |" in text and "⚠1: math500: different task versions" in text


def test_markdown_board_has_every_table_and_its_plots(runs):
    out = runs["root"] / "boards" / "board.md"
    result = leaderboard(runs["main"], "--format", "md", "--out", out, "--note", "runs: harness eval --limit 2")
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for heading in ("Accuracy and code use", "Adaptive vs fixed tool integration", "Metacognition", "math500 accuracy by level"):
        assert f"## {heading}" in text
    assert f"Built by: harness leaderboard {runs['main']} --format md --out {out}" in text and "runs: harness eval --limit 2" in text
    for name in ("board-accuracy-vs-code.png", "board-math500-levels.png"):
        assert f"]({name})" in text
        assert (out.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_board_is_self_contained(runs):
    out = runs["root"] / "boards" / "board.html"
    assert leaderboard(runs["main"], "--format", "html", "--out", out).exit_code == 0
    page = out.read_text()
    assert "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') == 2
    assert '<table id="main">' in page and '<tr class="reported">' in page


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/runs"], "does not exist"),
    (["{empty}"], "no results.json under"),
    (["{main}", "--format", "pdf"], "--format must be one of md, csv, html"),
    (["{broken}"], "not valid JSON"),
    (["{main}", "--reference-dir", "{bad_reference}"], "not valid TOML"),
])
def test_bad_input_is_one_clear_error(runs, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "x.toml").write_text("rows = [")
    paths = {"empty": tmp_path / "empty", "broken": tmp_path / "broken", "main": runs["main"], "bad_reference": tmp_path / "ref"}
    result = leaderboard(*(a.format(**paths) for a in args), "--out", tmp_path / "b.md")
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and message in result.output and len(result.output.strip().splitlines()) == 1
