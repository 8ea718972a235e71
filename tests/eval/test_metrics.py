"""Metrics on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from harness.eval.metrics import accuracy_metrics, breakdown, majority_correct, pass_at_k, tool_metrics


def record(doc, attempt, correct, extracted="1", calls=(), tokens=10, seconds=1.0, status=None, **extra):
    return {"doc_id": doc, "attempt": attempt, "correct": correct, "extracted": extracted, "tokens": tokens,
            "seconds": seconds, "tool_calls": [{"status": s} for s in calls], "finish_reason": "eos",
            "status": status or ("correct" if correct else "incorrect"), "metadata": extra.get("metadata", {}),
            "extra": extra.get("variants", {})}


@pytest.mark.parametrize(("n", "c", "k", "expected"), [(4, 0, 1, 0.0), (4, 4, 2, 1.0), (4, 1, 1, 0.25), (4, 1, 2, 0.5), (5, 2, 2, 0.7),
                                                      (10, 3, 5, 1 - math.comb(7, 5) / math.comb(10, 5))])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_greedy_accuracy_and_stderr():
    metrics = accuracy_metrics([record("a", 0, True), record("b", 0, False), record("c", 0, True), record("d", 0, True)])
    assert metrics["pass@1"] == 0.75
    assert metrics["pass@1_stderr"] == pytest.approx(0.5 / 2)  # sample std 0.5 over sqrt(4)


def test_avg_stderr_is_over_problems_not_over_attempts():
    """The problems are the sample: three problems whose attempts vary unequally (always right, half right,
    never right) give per-problem means 1, 0.5, 0, whose standard error is 0.5 / sqrt(3). Pooling the twelve
    attempts as if independent would give sqrt(12/11 · 0.25) / sqrt(12) ≈ 0.151, understating the error."""
    outcomes = {"a": [True] * 4, "b": [True, False, True, False], "c": [False] * 4}
    metrics = accuracy_metrics([record(doc, i, ok) for doc, attempts in outcomes.items() for i, ok in enumerate(attempts)])
    assert metrics["avg@4"] == pytest.approx(0.5)
    assert metrics["avg@4_stderr"] == pytest.approx(0.5 / math.sqrt(3))
    assert metrics["accuracy_stderr"] == metrics["avg@4_stderr"]


def test_avg_maj_and_pass_at_k_with_several_attempts():
    records = [record("a", 0, True, "5"), record("a", 1, False, "6"), record("a", 2, True, "5"), record("a", 3, False, "7"),
               record("b", 0, False, "1"), record("b", 1, False, "1"), record("b", 2, True, "2"), record("b", 3, False, "3")]
    metrics = accuracy_metrics(records)
    assert metrics["avg@4"] == pytest.approx((0.5 + 0.25) / 2)
    assert metrics["maj@4"] == 0.5  # a: "5" wins and is right; b: "1" wins and is wrong
    assert metrics["pass@2"] == pytest.approx((pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2)) / 2)
    assert metrics["pass@4"] == 1.0


def test_majority_tie_goes_to_the_earliest_attempt():
    assert majority_correct([record("a", 0, False, "1"), record("a", 1, True, "2")]) is False
    assert majority_correct([record("a", 0, False, None), record("a", 1, True, "2")]) is True


def test_unscorable_problems_are_counted_apart():
    metrics = accuracy_metrics([record("a", 0, True), record("b", 0, None, status="gold_unscorable")])
    assert (metrics["problems"], metrics["unscorable_problems"], metrics["accuracy"]) == (1, 1, 1.0)


def test_tool_metrics():
    records = [record("a", 0, True, calls=("ok", "error")), record("a", 1, True), record("b", 0, False, calls=("timeout",), tokens=30)]
    tools = tool_metrics(records)
    assert tools["code_rate"] == pytest.approx(2 / 3)
    assert tools["calls_per_problem"] == 1.5 and tools["calls_per_response"] == 1.0
    assert tools["exec_error_rate"] == pytest.approx(2 / 3) and tools["exec_timeouts"] == 1
    assert tools["tokens_per_problem"] == 25.0


def test_breakdown_by_level():
    records = [record("a", 0, True, metadata={"level": 1}), record("b", 0, False, metadata={"level": 1}),
               record("c", 0, True, metadata={"level": 5})]
    result = breakdown(records, ["level"])
    assert result["level"]["1"]["accuracy"] == 0.5 and result["level"]["5"]["n"] == 1


def test_gsm8k_variants_are_reported():
    records = [record("a", 0, True, variants={"strict_match": False, "flexible_extract": True})]
    metrics = accuracy_metrics(records)
    assert metrics["strict_match"] == 0.0 and metrics["flexible_extract"] == 1.0
