"""Answer extraction and equivalence: the one scorer behind metrics, RL rewards and EM estimates.

    >>> from harness.grading import grade
    >>> grade("... so the answer is $\\boxed{\\frac{1}{2}}$.", "0.5").correct
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from harness.grading.pool import DEFAULT_DEADLINE_S, GradingPool, shared_pool
from harness.grading.scorer import STATUSES, TASKS, Grade, score_response

__all__ = ["DEFAULT_DEADLINE_S", "STATUSES", "TASKS", "Grade", "GradingPool", "grade", "grade_batch", "score_response"]


def grade(response: str, gold: object, task: str = "math500") -> Grade:
    """Score one response (or bare answer) against its gold answer, within the default deadline."""
    return shared_pool().grade(response, gold, task)


def grade_batch(items: Iterable[Sequence]) -> list[Grade]:
    """Score many (response, gold[, task]) tuples in parallel over the cores, in input order."""
    return shared_pool().grade_many(items)
