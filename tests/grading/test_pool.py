"""The deadline pool: hostile input never hangs the caller or crashes it, and many threads can grade at once."""

from __future__ import annotations

import random
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.grading import GradingPool, grade, grade_batch
from harness.grading.pool import _STARTUP_TIMEOUT_S

DEADLINE_S = 2.0
# Scheduling slack on a loaded 2-core machine: the call must end close to the deadline, not at it exactly.
SLACK_S = 1.5

HOSTILE = [
    "x" * 1_000_000,
    "\\boxed{" * 10_000 + "1" + "}" * 10_000,
    "{" * 10_000,
    "\\frac{" * 5_000,
    "$" + "\\sqrt{" * 3_000 + "2" + "}" * 3_000 + "$",
    "\\boxed{" + "(" * 5_000 + ")" * 5_000 + "}",
    "\\boxed{\\begin{pmatrix}" + "1&" * 20_000 + "1\\end{pmatrix}}",
    "\\boxed{9^{9^{9^{9^{9}}}}}",
    "\\boxed{\\int_0^\\infty e^{-x^{x^{x}}} dx}",
    "\\boxed{10^{10^{10}}!}",
    "\x00\x01\xff\ud7ff garbage \\\\\\\\ }{ $$ \\[ \\( ",
    "Answer: " + "1," * 200_000,
]


@pytest.fixture(scope="module")
def strict_pool():
    with GradingPool(deadline_s=DEADLINE_S) as pool:
        pool.grade("1", "1")
        yield pool


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda text: repr(text[:24]))
@pytest.mark.parametrize("side", ["pred", "gold"])
def test_hostile_input_is_bounded_and_never_raises(strict_pool, hostile, side):
    pred, gold = (hostile, "1") if side == "pred" else ("\\boxed{1}", hostile)
    start = time.monotonic()
    result = strict_pool.grade(pred, gold)
    assert time.monotonic() - start < DEADLINE_S + SLACK_S
    assert result.status in {"correct", "incorrect", "no_answer", "parse_error", "timeout", "gold_unscorable"}


def test_random_strings_never_hang(strict_pool, monkeypatch):
    """Every comparison ends by its deadline (plus scheduling slack) from the moment it holds a worker.

    The wait *for* a worker is not the comparison's: after a timeout the replacement imports SymPy, a second
    on an idle machine and far more on a loaded one, which made a bound on the whole batch fail under load
    while nothing hung. So each call is timed from checkout to answer (a stricter check per comparison than
    the batch bound it replaces), and the batch must keep answering: a stretch longer than a worker's
    start-up allowance plus one comparison with no new answer is a hang."""
    rng = random.Random(1234)
    alphabet = string.printable + "\\{}$^_"
    items = []
    for _ in range(60):
        fragments = ["\\boxed{", "\\frac{", "}", "{", "$", "\\sqrt", "^", "\\left(", "\\right)", rng.choice(alphabet) * rng.randint(1, 5)]
        items.append(("".join(rng.choice(fragments) for _ in range(rng.randint(1, 400))), str(rng.randint(0, 99))))
    held_since, durations = threading.local(), []
    checkout, grade_one = strict_pool._checkout, strict_pool.grade

    def timed_checkout():
        worker = checkout()
        held_since.value = time.monotonic()
        return worker

    def timed_grade(*item):
        result = grade_one(*item)
        durations.append(time.monotonic() - held_since.value)
        return result

    monkeypatch.setattr(strict_pool, "_checkout", timed_checkout)
    monkeypatch.setattr(strict_pool, "grade", timed_grade)
    results = []
    batch = threading.Thread(target=lambda: results.extend(strict_pool.grade_many(items)), daemon=True)
    batch.start()
    answered = -1
    while batch.is_alive() and len(durations) > answered:  # answers keep coming: slow (loaded), not hung
        answered = len(durations)
        batch.join(_STARTUP_TIMEOUT_S + DEADLINE_S + SLACK_S)  # a worker's start-up allowance, then one comparison
    assert not batch.is_alive(), f"grade_many stalled after {len(durations)} of {len(items)} answers"
    assert len(results) == len(items) == len(durations)
    assert max(durations) < DEADLINE_S + SLACK_S, sorted(durations)[-5:]


def test_timeout_replaces_the_worker_and_the_pool_keeps_working():
    with GradingPool(workers=1, deadline_s=0.001) as pool:
        pool.grade("1", "1")  # wait for the worker to be up (a plain string match is well under 1 ms)
        slow = pool.grade("\\boxed{\\int_0^1 x^{17} \\sin(x)\\,dx}", "\\frac{1}{\\sqrt{3}} + \\cos(1)")
        assert (slow.correct, slow.status) == (False, "timeout")
        pool.deadline_s = 30
        assert pool.grade("\\boxed{2}", "2").correct is True


def test_many_threads_share_the_pool_without_mixing_answers():
    expected = [(f"\\boxed{{{n}}}", str(n if n % 3 else n + 1), n % 3 != 0) for n in range(200)]
    with ThreadPoolExecutor(8) as executor:
        results = list(executor.map(lambda item: grade(item[0], item[1]).correct, expected))
    assert results == [ok for _, _, ok in expected]


def test_grade_batch_keeps_input_order():
    results = grade_batch([("\\boxed{3}", "3"), ("\\boxed{4}", "5", "math500"), ("#### 7", "7", "gsm8k")])
    assert [r.correct for r in results] == [True, False, True]
