"""The scorer: one response against one gold answer, for one task.

This is the single function behind the eval metric, the RL reward and the EM trainer's success
estimates. It is pure and unbounded in time; callers go through ``harness.grading.grade`` /
``grade_batch``, which run it in worker processes under a deadline.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from harness.grading.equivalence import (
    decimals_as_fractions,
    has_finite_decimal,
    normalize,
    numbers_match,
    parse_math,
    sequence_match,
    spell_out_numbers_in_text,
    strip_function_lhs,
    symbolic_match,
)
from harness.grading.extract import (
    extract_answer,
    gold_answer,
    gsm8k_strict,
    has_words,
    last_number,
    remove_tool_output,
    strip_think,
)
from harness.grading.unicode_answers import has_combining_mark, plain_unicode

# Bump when extraction or equivalence rules change: it is part of every task version.
GRADER_VERSION = "2"
TASKS = ("math500", "gsm8k", "aime24", "aime25", "amc23")
STATUSES = ("correct", "incorrect", "no_answer", "parse_error", "timeout", "gold_unscorable")


@dataclass(frozen=True)
class Grade:
    """``correct`` is None only when the gold itself cannot be scored (or the deadline passed)."""

    correct: bool | None
    extracted: str | None
    status: str
    extra: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _verdict(correct: bool, extracted: str) -> Grade:
    return Grade(correct, extracted, "correct" if correct else "incorrect")


# Past these sizes an answer is compared as a string only: parsing it would spend the whole deadline.
MAX_ANSWER_CHARS = 2000
MAX_NESTING = 40


def _too_complex(answer: str) -> bool:
    if len(answer) > MAX_ANSWER_CHARS:
        return True
    depth = deepest = 0
    for ch in answer:
        if ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]":
            depth -= 1
    return deepest > MAX_NESTING


def compare(pred: str, gold: str) -> Grade:
    """Grade an extracted answer string against a gold answer string."""
    extracted = pred
    pred, gold = spell_out_numbers_in_text(pred), spell_out_numbers_in_text(gold)
    gold_norm = normalize(gold)
    if gold_norm and normalize(pred) == gold_norm:
        return _verdict(True, extracted)
    if has_combining_mark(pred):  # 5̸ is "not 5": a mark the parsers would drop
        return Grade(False, extracted, "parse_error")
    if _too_complex(gold):
        return Grade(None, extracted, "gold_unscorable")
    if _too_complex(pred):
        return Grade(False, extracted, "parse_error")
    for decisive in (numbers_match, sequence_match):
        verdict = decisive(pred, gold)
        if verdict is not None:
            return _verdict(verdict, extracted)
    pred, gold = strip_function_lhs(pred, gold)
    gold_parsed = parse_math(gold, is_answer=True)
    if not gold_parsed:
        return Grade(None, extracted, "gold_unscorable")
    if has_finite_decimal(gold_parsed):  # an integer gold: no float rounding may reach it
        pred = decimals_as_fractions(pred)
    pred_parsed = parse_math(pred, is_answer=True)
    if not pred_parsed:
        return Grade(False, extracted, "parse_error")
    return _verdict(symbolic_match(gold_parsed, pred_parsed), extracted)


def _compare_unanchored(text: str, gold: str, task: str) -> Grade:
    """No anchor: the last number (GSM8K, lm-eval's flexible match) or math-verify's last LaTeX/expression."""
    number = last_number(text)
    ends_with_number = number is not None and text.rstrip().rstrip(".").rstrip().endswith(number)
    if task != "gsm8k" and not ends_with_number and not _too_complex(text):
        parsed = parse_math(text, is_answer=False)
        if parsed:
            return compare(str(parsed[-1]), gold)
    return compare(number, gold) if number is not None else Grade(False, None, "no_answer")


def _gsm8k_variants(response: str, gold: str) -> dict[str, bool]:
    """Both lm-eval GSM8K extractions, reported beside the main verdict."""
    text = strip_think(response)
    if text is None:
        return {"strict_match": False, "flexible_extract": False}
    text = remove_tool_output(text)[0]
    variants = {}
    for name, found in (("strict_match", gsm8k_strict(text)), ("flexible_extract", last_number(text))):
        variants[name] = bool(found is not None and numbers_match(found, gold))
    return variants


def score_response(response: str, gold: object, task: str = "math500") -> Grade:
    """Extract the answer from ``response`` (a whole response or a bare answer) and grade it."""
    if task not in TASKS:
        raise ValueError(f"unknown grading task {task!r}; expected one of {', '.join(TASKS)}")
    if gold is None or (isinstance(gold, float) and not math.isfinite(gold)):
        return Grade(None, None, "gold_unscorable")  # no reference answer: nothing to grade against
    gold_text = plain_unicode(gold_answer(gold))
    response = plain_unicode(str(response))
    extraction = extract_answer(response, task)
    if extraction.answer is not None:
        grade = compare(extraction.answer, gold_text)
        if grade.status == "parse_error" and extraction.method == "bare" and has_words(extraction.answer):
            # short prose ("So 3 + 4 = 7 apples."), not an answer that must parse whole
            grade = _compare_unanchored(extraction.answer, gold_text, task)
    elif extraction.fallback is not None:
        grade = _compare_unanchored(extraction.fallback, gold_text, task)
    else:
        grade = Grade(False, None, "no_answer")
    if task == "gsm8k":
        grade = Grade(grade.correct, grade.extracted, grade.status, _gsm8k_variants(response, gold_text))
    return grade
