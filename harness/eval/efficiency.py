"""Efficiency and tool-trust metrics, from the sample records a run already stored (nothing is generated).

Per run (and per difficulty bucket: MATH500 ``level``, the testbed's ``kind``):

- ``tool_error_rate_cell``: executed cells that did not end ``ok`` (raised, timed out, ran out of memory,
  were killed) over executed cells; ``tool_error_rate_sample``: responses with such a cell over responses
  that executed a cell;
- ``tool_productivity``: correct answers over executed cells (OTC-PO's definition, arXiv 2504.14870: all
  correct answers, with or without code, per cell the run executed);
- ``model_tokens_per_correct`` / ``tool_tokens_per_correct`` / ``seconds_per_correct``: what the whole run
  spent (model tokens, tool-output tokens, wall seconds) over its correct answers;
- ``tool_ignored``: responses where a cell printed the gold answer but the final answer is wrong (or
  missing); its rate is over the responses where some cell printed the gold;
- ``tool_followed_wrongly``: wrong responses whose final answer equals a value a cell printed that is not
  the gold; its rate is over the responses where some cell printed a wrong value.

A ratio whose denominator is zero (no cells, no correct answer, ...) is None: undefined, never 0 or inf.

**What a cell printed**: the last non-empty line of an ``ok`` cell's output, read as a candidate answer the
way the grader reads a response (``harness.grading``: a short bare string is the answer, otherwise the last
number or LaTeX span). Cells that failed print no candidate. **Equals** is always the grader's verdict
(``0.5`` equals ``\\frac{1}{2}``), with the gold or the final answer as the reference.

Redundant calls (a cell recomputing a value the text already stated) are not measured: every number the
text mentions would count as "stated", so small integers would flag most cells; telling a derived result
from a restated operand needs more than a cheap check.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from harness.eval.metrics import metadata_groups

DIFFICULTY_KEYS = ("level", "kind")
METRICS = ("responses", "correct", "cells", "tool_error_rate_cell", "tool_error_rate_sample", "tool_productivity",
           "model_tokens_per_correct", "tool_tokens_per_correct", "seconds_per_correct", "tool_ignored",
           "tool_ignored_rate", "tool_followed_wrongly", "tool_followed_wrongly_rate")


@dataclass(frozen=True)
class Trust:
    """What the grader said about one response's printed values."""

    printed_gold: bool = False
    printed_wrong: bool = False
    followed_wrong: bool = False


def printed_value(call: dict) -> str | None:
    """The candidate answer a cell printed: the last non-empty line of an ``ok`` cell's output."""
    if call["status"] != "ok":
        return None
    lines = [line.strip() for line in call["feedback"].splitlines() if line.strip()]
    return lines[-1] if lines else None


def trust_verdicts(records: list[dict], grader: str) -> list[Trust]:
    """One Trust per record; every "equals" is ``harness.grading``'s verdict, graded in parallel batches."""
    from harness.grading import grade_batch

    printed = [(index, value) for index, record in enumerate(records) if record["correct"] is not None
               for value in filter(None, map(printed_value, record["tool_calls"]))]
    against_gold = grade_batch([(value, records[index]["gold"], grader) for index, value in printed])
    # Only a wrong response with a final answer can have followed a printed value.
    followable = [k for k, (index, _) in enumerate(printed)
                  if records[index]["correct"] is False and records[index]["extracted"] is not None]
    against_final = dict(zip(followable, grade_batch([(printed[k][1], records[printed[k][0]]["extracted"], grader)
                                                      for k in followable]), strict=True))
    flags: dict[int, dict[str, bool]] = defaultdict(lambda: dict.fromkeys(("printed_gold", "printed_wrong", "followed_wrong"), False))
    for k, (index, _) in enumerate(printed):
        gold, wrong = against_gold[k].correct is True, against_gold[k].correct is False
        flags[index]["printed_gold"] |= gold
        flags[index]["printed_wrong"] |= wrong
        flags[index]["followed_wrong"] |= wrong and k in against_final and against_final[k].correct is True
    return [Trust(**flags[index]) if index in flags else Trust() for index in range(len(records))]


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _tokens(record: dict, kind: str) -> int:
    segments = record.get("segments")
    if not segments:  # a record without segments counts all its tokens as the model's
        return record["tokens"] if kind == "model" else 0
    return sum(len(segment["token_ids"]) for segment in segments if segment["kind"] == kind)


def efficiency_metrics(records: list[dict], trust: list[Trust]) -> dict:
    """The metrics of the module docstring over these records (``trust`` in the same order)."""
    scored = [(r, t) for r, t in zip(records, trust, strict=True) if r["correct"] is not None]
    cells = [call for record, _ in scored for call in record["tool_calls"]]
    failed = [call for call in cells if call["status"] != "ok"]
    with_code = [record for record, _ in scored if record["tool_calls"]]
    correct = sum(bool(record["correct"]) for record, _ in scored)
    ignored = sum(t.printed_gold and not record["correct"] for record, t in scored)
    followed = sum(t.followed_wrong for _, t in scored)
    return {
        "responses": len(scored),
        "correct": correct,
        "cells": len(cells),
        "tool_error_rate_cell": _ratio(len(failed), len(cells)),
        "tool_error_rate_sample": _ratio(sum(any(c["status"] != "ok" for c in r["tool_calls"]) for r in with_code), len(with_code)),
        "tool_productivity": _ratio(correct, len(cells)),
        "model_tokens_per_correct": _ratio(sum(_tokens(record, "model") for record, _ in scored), correct),
        "tool_tokens_per_correct": _ratio(sum(_tokens(record, "tool") for record, _ in scored), correct),
        "seconds_per_correct": _ratio(sum(record["seconds"] for record, _ in scored), correct),
        "tool_ignored": ignored,
        "tool_ignored_rate": _ratio(ignored, sum(t.printed_gold for _, t in scored)),
        "tool_followed_wrongly": followed,
        "tool_followed_wrongly_rate": _ratio(followed, sum(t.printed_wrong for _, t in scored)),
    }


def efficiency_report(records: list[dict], grader: str) -> dict:
    """The metrics over all records, and per value of each difficulty key the records carry."""
    trust = trust_verdicts(records, grader)
    report = efficiency_metrics(records, trust)
    by: dict[str, dict[str, dict]] = {}
    for key in DIFFICULTY_KEYS:
        if groups := metadata_groups(records, key):
            by[key] = {value: efficiency_metrics([records[i] for i in indices], [trust[i] for i in indices])
                       for value, indices in groups.items()}
    return {**report, "by": by}


# How a report (or a leaderboard record holding its keys) is shown in a table: "—" where undefined.
CELL_HEADERS = ["n", "tool err % cells", "tool err % resp", "productivity", "model tok / correct", "tool tok / correct",
                "s / correct", "ignored (%)", "followed wrongly (%)"]


def display_cells(report: dict) -> list[str]:
    def fixed(value, digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    def count(name: str) -> str:
        if report.get(name) is None:
            return "—"
        rate = report.get(f"{name}_rate")
        return f"{report[name]} ({fixed(None if rate is None else 100 * rate, 1)}%)"

    percent = {name: None if report.get(name) is None else 100 * report[name]
               for name in ("tool_error_rate_cell", "tool_error_rate_sample")}
    return ["—" if report.get("responses") is None else str(report["responses"]), fixed(percent["tool_error_rate_cell"], 1),
            fixed(percent["tool_error_rate_sample"], 1), fixed(report.get("tool_productivity"), 2),
            fixed(report.get("model_tokens_per_correct"), 0), fixed(report.get("tool_tokens_per_correct"), 0),
            fixed(report.get("seconds_per_correct"), 2), count("tool_ignored"), count("tool_followed_wrongly")]
