"""Efficiency and tool-trust metrics on a table of hand-made samples, every value worked out by hand;
the grader decides every "equals" (0.5 is the gold \\frac{1}{2})."""

from __future__ import annotations

import pytest

from harness.eval.efficiency import efficiency_report, printed_value


def cell(status: str, output: str) -> dict:
    return {"code": "print(...)", "status": status, "feedback": output, "duration_s": 0.01}


def sample(doc: str, gold: str, extracted: str | None, correct: bool | None, cells=(), model_tokens=10, tool_tokens=0,
           seconds=1.0, level=1) -> dict:
    segments = [{"kind": "model", "token_ids": [1] * model_tokens, "text": ""}]
    if tool_tokens:
        segments.append({"kind": "tool", "token_ids": [2] * tool_tokens, "text": ""})
    return {"doc_id": doc, "attempt": 0, "gold": gold, "extracted": extracted, "correct": correct, "tool_calls": list(cells),
            "segments": segments, "tokens": model_tokens + tool_tokens, "seconds": seconds, "metadata": {"level": level}}


SAMPLES = [
    # no cell, right
    sample("a", "4", "4", True, model_tokens=10, seconds=1.0),
    # a cell printed 0.5, the gold is \frac{1}{2}: the grader says it printed the gold; the answer is right
    sample("b", "\\frac{1}{2}", "1/2", True, [cell("ok", "0.5\n")], model_tokens=20, tool_tokens=5, seconds=2.0),
    # tool ignored: the cell printed the gold 7, the final answer is 8
    sample("c", "7", "8", False, [cell("ok", "7\n")], model_tokens=30, tool_tokens=3, seconds=3.0),
    # tool followed wrongly: the cell printed 12 (wrong), and 12 is the final answer
    sample("d", "10", "12", False, [cell("ok", "12\n")], model_tokens=40, tool_tokens=4, seconds=4.0, level=2),
    # a cell that timed out, then a right answer without its help
    sample("e", "5", "5", True, [cell("timeout", "the cell ran past its 2 s limit")], model_tokens=10, tool_tokens=6,
           seconds=1.0, level=2),
    # a failing cell, then one that printed the gold 3 (last non-empty line); no final answer: ignored too
    sample("f", "3", None, False, [cell("error", "NameError: name 'x' is not defined"), cell("ok", "working...\n3\n\n")],
           model_tokens=50, tool_tokens=10, seconds=5.0, level=2),
    # a gold the grader cannot score: left out of every metric
    sample("g", None, "1", None, [cell("error", "boom")], model_tokens=99, tool_tokens=99, seconds=99.0),
]

EXPECTED = {
    "responses": 6, "correct": 3, "cells": 6,
    "tool_error_rate_cell": 2 / 6,        # e's timeout and f's error, of the six cells
    "tool_error_rate_sample": 2 / 5,      # e and f, of the five responses with a cell
    "tool_productivity": 3 / 6,           # a, b, e right; six cells
    "model_tokens_per_correct": 160 / 3,  # 10 + 20 + 30 + 40 + 10 + 50
    "tool_tokens_per_correct": 28 / 3,    # 5 + 3 + 4 + 6 + 10
    "seconds_per_correct": 16 / 3,        # 1 + 2 + 3 + 4 + 1 + 5
    "tool_ignored": 2, "tool_ignored_rate": 2 / 3,                # c, f of b, c, f (a cell printed the gold)
    "tool_followed_wrongly": 1, "tool_followed_wrongly_rate": 1.0,  # d of d (a cell printed a wrong value)
}

EXPECTED_LEVEL_1 = {  # a, b, c
    "responses": 3, "correct": 2, "cells": 2, "tool_error_rate_cell": 0.0, "tool_error_rate_sample": 0.0,
    "tool_productivity": 1.0, "model_tokens_per_correct": 30.0, "tool_tokens_per_correct": 4.0, "seconds_per_correct": 3.0,
    "tool_ignored": 1, "tool_ignored_rate": 0.5, "tool_followed_wrongly": 0, "tool_followed_wrongly_rate": None,
}


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items())
def test_every_metric_on_the_hand_made_table(name, expected):
    assert efficiency_report(SAMPLES, "math500")[name] == pytest.approx(expected)


def test_per_difficulty_bucket():
    report = efficiency_report(SAMPLES, "math500")
    assert set(report["by"]) == {"level"}
    assert report["by"]["level"]["1"] == pytest.approx(EXPECTED_LEVEL_1)
    assert report["by"]["level"]["2"]["tool_followed_wrongly"] == 1


def test_no_correct_answer_and_no_cell_leave_the_ratios_undefined():
    report = efficiency_report([sample("a", "4", "5", False), sample("b", "6", None, False)], "math500")
    for name in ("tool_error_rate_cell", "tool_error_rate_sample", "tool_productivity", "model_tokens_per_correct",
                 "tool_tokens_per_correct", "seconds_per_correct", "tool_ignored_rate", "tool_followed_wrongly_rate"):
        assert report[name] is None, name
    assert (report["correct"], report["cells"], report["tool_ignored"]) == (0, 0, 0)


def test_cells_but_no_correct_answer_keep_the_rates_that_are_defined():
    report = efficiency_report([sample("a", "4", "5", False, [cell("ok", "5\n"), cell("timeout", "")])], "math500")
    assert report["tool_error_rate_cell"] == 0.5 and report["tool_productivity"] == 0.0
    assert report["model_tokens_per_correct"] is None and report["seconds_per_correct"] is None
    assert report["tool_followed_wrongly"] == 1


@pytest.mark.parametrize(("status", "output", "value"), [
    ("ok", "0.5\n", "0.5"), ("ok", "a\nb\n\n  \n", "b"), ("ok", "", None), ("error", "7\nZeroDivisionError", None),
    ("timeout", "7\n", None)])
def test_printed_value_is_the_last_line_of_an_ok_cell(status, output, value):
    assert printed_value(cell(status, output)) == value
