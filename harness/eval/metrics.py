"""Metrics over graded samples: accuracy with stderr, pass@k, maj@n, breakdowns and tool usage.

Input is the list of sample records of one run (one per problem and attempt, as in samples.jsonl).
Every accuracy is a mean over problems of a per-problem score, and its stderr is the standard
error of that mean (sample standard deviation over problems / sqrt(problems)).

- ``pass@1``: greedy runs (one attempt): the fraction of problems solved;
- ``avg@n``: mean correctness over all n attempts (the unbiased pass@1 estimate);
- ``pass@k``: the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k), per problem;
- ``maj@n``: the most frequent extracted answer (ties: the earliest attempt among them) is graded.

Samples whose gold could not be scored (``correct`` is None) are left out and counted apart.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from statistics import mean, stdev

from harness.grading.equivalence import normalize


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k draws (without replacement) from n attempts with c correct is correct."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_and_stderr(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    if len(values) == 1:
        return float(values[0]), 0.0
    return mean(values), stdev(values) / math.sqrt(len(values))


def by_problem(records: list[dict]) -> dict[str, list[dict]]:
    problems: dict[str, list[dict]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r["attempt"]):
        problems[record["doc_id"]].append(record)
    return dict(problems)


def majority_correct(attempts: list[dict]) -> bool:
    answers = [normalize(a["extracted"]) if a["extracted"] is not None else None for a in attempts]
    votes = Counter(answer for answer in answers if answer)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(answer for answer in answers if answer and votes[answer] == top)
    return bool(attempts[answers.index(winner)]["correct"])


def accuracy_metrics(records: list[dict]) -> dict:
    problems = {doc: attempts for doc, attempts in by_problem(records).items() if all(a["correct"] is not None for a in attempts)}
    metrics: dict = {"problems": len(problems), "unscorable_problems": len(by_problem(records)) - len(problems)}
    if not problems:
        return metrics
    n = min(len(attempts) for attempts in problems.values())
    per_problem = [[bool(a["correct"]) for a in attempts[:n]] for attempts in problems.values()]
    name = "pass@1" if n == 1 else f"avg@{n}"
    metrics["accuracy"], metrics["accuracy_stderr"] = mean_and_stderr([mean(p) for p in per_problem])
    metrics[name], metrics[f"{name}_stderr"] = metrics["accuracy"], metrics["accuracy_stderr"]
    metrics["samples_per_problem"] = n
    if n > 1:
        for k in sorted({2**i for i in range(int(math.log2(n)) + 1)} | {n}):
            metrics[f"pass@{k}"], metrics[f"pass@{k}_stderr"] = mean_and_stderr([pass_at_k(n, sum(p), k) for p in per_problem])
        majority = [float(majority_correct(attempts[:n])) for attempts in problems.values()]
        metrics[f"maj@{n}"], metrics[f"maj@{n}_stderr"] = mean_and_stderr(majority)
    variants = sorted({key for attempts in problems.values() for a in attempts for key in a.get("extra", {})})
    for variant in variants:
        metrics[variant], metrics[f"{variant}_stderr"] = mean_and_stderr(
            [mean(float(a.get("extra", {}).get(variant, False)) for a in attempts[:n]) for attempts in problems.values()]
        )
    return metrics


def tool_metrics(records: list[dict]) -> dict:
    """How code was used: per response (attempt) unless the name says per problem."""
    if not records:
        return {}
    calls = [call for record in records for call in record["tool_calls"]]
    problems = by_problem(records)
    return {
        "code_rate": mean(float(bool(record["tool_calls"])) for record in records),
        "calls_per_response": len(calls) / len(records),
        "calls_per_problem": len(calls) / len(problems),
        "exec_error_rate": (sum(call["status"] != "ok" for call in calls) / len(calls)) if calls else 0.0,
        "exec_timeouts": sum(call["status"] == "timeout" for call in calls),
        "exec_errors": sum(call["status"] != "ok" for call in calls),
        "tokens_per_response": mean(record["tokens"] for record in records),
        "tokens_per_problem": sum(record["tokens"] for record in records) / len(problems),
        "seconds_per_problem": sum(record["seconds"] for record in records) / len(problems),
        "no_answer_rate": mean(float(record["status"] == "no_answer") for record in records),
        "finish_reasons": dict(Counter(record["finish_reason"] for record in records)),
    }


def metadata_groups(records: list[dict], key: str) -> dict[str, list[int]]:
    """The positions of the records per value of metadata ``key`` (as text), in value order; records without it left out."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        if key in record.get("metadata", {}):
            groups[str(record["metadata"][key])].append(index)
    return dict(sorted(groups.items()))


def breakdown(records: list[dict], keys: list[str] | tuple[str, ...]) -> dict:
    """Accuracy and code rate per value of each metadata key (MATH500: level and subject)."""
    result = {}
    for key in keys:
        result[key] = {}
        for value, indices in metadata_groups(records, key).items():
            group = [records[i] for i in indices]
            metrics = accuracy_metrics(group)
            result[key][value] = {"n": metrics["problems"], "accuracy": metrics.get("accuracy", 0.0),
                                  "accuracy_stderr": metrics.get("accuracy_stderr", 0.0),
                                  "code_rate": mean(float(bool(r["tool_calls"])) for r in group)}
    return result
