"""The grader's rules as a table: (pred, gold, task) -> verdict and status. One row, one behaviour."""

from __future__ import annotations

import pytest

from harness.grading.scorer import score_response

CASES = [
    # AIME: integers with leading zeros.
    ("\\boxed{25}", "025", "aime24", True, "correct"),
    ("The answer is 73.", "073", "aime25", True, "correct"),
    ("\\boxed{26}", "025", "aime24", False, "incorrect"),
    # AMC golds are floats.
    ("\\boxed{27}", 27.0, "amc23", True, "correct"),
    ("\\boxed{-1}", -1.0, "amc23", True, "correct"),
    # GSM8K: $, thousands separators, trailing .0, exact comparison.
    ("She pays $1,234.00 in total.\n#### 1234", "Some work <<2*3=6>>\n#### 1234", "gsm8k", True, "correct"),
    ("\\boxed{\\$18.00}", "18", "gsm8k", True, "correct"),
    ("\\boxed{10001}", "10000", "gsm8k", False, "incorrect"),
    ("\\boxed{10,000}", "10000", "gsm8k", True, "correct"),
    # Percent: 50% equals 50, 0.5 does not.
    ("\\boxed{50\\%}", "50", "math500", True, "correct"),
    ("\\boxed{0.5}", "50", "math500", False, "incorrect"),
    # Interval endpoints matter.
    ("\\boxed{(0, 1)}", "[0,1)", "math500", False, "incorrect"),
    ("\\boxed{[0,1)}", "[0, 1)", "math500", True, "correct"),
    # Tiny rationals are exact.
    ("\\boxed{\\frac{1}{2004!}}", "\\frac{1}{2006!}", "math500", False, "incorrect"),
    ("\\boxed{\\frac{1}{2^{99}}}", "\\frac{1}{2^{98}}", "math500", False, "incorrect"),
    ("\\boxed{\\frac{1}{2^{99}}}", "2^{-99}", "math500", True, "correct"),
    # A printed float matches the fraction it approximates; a rounded one does not.
    ("\\boxed{0.3333333333333333}", "\\frac{1}{3}", "math500", True, "correct"),
    ("\\boxed{0.33}", "\\frac{1}{3}", "math500", False, "incorrect"),
    # No tolerance on golds with a finite decimal (issue 22.9): only 1/3-like fractions have printed floats.
    ("\\boxed{5.0000001}", "5", "math500", False, "incorrect"),
    ("\\boxed{4.9999999}", "5", "math500", False, "incorrect"),
    ("\\boxed{5.000001}", "5", "math500", False, "incorrect"),
    ("\\boxed{5.0000001}", "\\frac{10}{2}", "math500", False, "incorrect"),
    ("\\boxed{0.2500001}", "\\frac14", "math500", False, "incorrect"),
    ("\\boxed{0.2500001}", "2^{-2}", "math500", False, "incorrect"),
    ("\\boxed{x = 2.5}", "\\frac52", "math500", True, "correct"),
    ("\\boxed{5.000000}", "5", "math500", True, "correct"),
    ("\\boxed{0.6666667}", "\\frac23", "math500", True, "correct"),
    # A parse that leaves characters unexplained is no match (issue 22.7): math-verify took the prefix.
    ("\\boxed{5@0}", "5", "math500", False, "parse_error"),
    ("\\boxed{5#0}", "5", "math500", False, "parse_error"),
    ("\\boxed{5 \\neq}", "5", "math500", False, "parse_error"),
    ("\\boxed{5 \\leq}", "5", "math500", False, "parse_error"),
    ("\\boxed{5 +}", "5", "math500", False, "parse_error"),
    ("\\boxed{5 ?}", "5", "math500", False, "parse_error"),
    ("\\boxed{5..0}", "5", "math500", False, "parse_error"),
    ("\\boxed{5 \\\\ 0}", "5", "math500", False, "parse_error"),
    ("\\boxed{5\\text{0}}", "5", "math500", False, "incorrect"),
    ("\\boxed{5\\textbf{0}}", "5", "math500", False, "incorrect"),
    ("\\boxed{5\\text{0 cm}}", "5", "math500", False, "incorrect"),
    ("\\boxed{\\text{5 cm}}", "5", "math500", True, "correct"),
    ("185\\", "185", "math500", True, "correct"),
    ("5 \\neq", "5", "math500", False, "parse_error"),
    ("The answer is 5@0.", "5", "math500", False, "parse_error"),
    # Unicode is read as it shows (issue 22.8): invisible characters go, a combining overlay is refused.
    ("\\boxed{5\u200b0}", "5", "math500", False, "incorrect"),
    ("\\boxed{5\u200b0}", "50", "math500", True, "correct"),
    ("\\boxed{5\ufeff0}", "5", "math500", False, "incorrect"),
    ("\\boxed{5\u0338}", "5", "math500", False, "parse_error"),
    ("\\boxed{5\u20d2}", "5", "math500", False, "parse_error"),
    ("\\boxed{x = 5\u0305}", "5", "math500", False, "parse_error"),
    ("\\boxed{x \u2260 5}", "x = 5", "math500", False, "incorrect"),
    ("\\boxed{\uff15\uff10}", "50", "math500", True, "correct"),
    ("\\boxed{5\u00b2}", "25", "math500", True, "correct"),
    ("\\boxed{5\u00b2}", "52", "math500", False, "incorrect"),
    ("\\boxed{5\u00bd}", "\\frac{11}{2}", "math500", True, "correct"),
    ("The area is 1,000.99m\u00b2", "1000.99", "math500", True, "correct"),
    # Symbolic equivalence through math-verify.
    ("\\boxed{\\frac{\\sqrt{3}}{3}}", "\\frac{1}{\\sqrt{3}}", "math500", True, "correct"),
    ("\\boxed{x \\geq 5}", "x \\geq 5", "math500", True, "correct"),
    ("\\boxed{1 + \\frac{1}{\\mathrm{e}}}", "1 - \\frac{1}{\\mathrm{e}}", "math500", False, "incorrect"),
    ("\\boxed{1, 3, 5, \\ldots, 2n-1}", "1, 2, \\ldots, n", "math500", False, "incorrect"),
    ("\\boxed{4\\sqrt(2)}", "4", "math500", False, "incorrect"),
    ("\\boxed{y = 2x + 3}", "f(x) = 2x + 3", "math500", True, "correct"),
    ("\\boxed{10}", "10\\text{ weeks}", "math500", True, "correct"),
    # Huge numbers are compared structurally, and fast.
    ("\\boxed{[2^{\\frac{1}{2^{1000}}}, \\infty)}", "[1,+\\infty)", "math500", False, "incorrect"),
    # No answer.
    ("<think>the answer is 5", "5", "math500", False, "no_answer"),
    ("Let me compute.\n```python\nprint(2+3)\n```\n```output\n5\n```", "5", "math500", False, "no_answer"),
    ("", "5", "math500", False, "no_answer"),
    # Think blocks are stripped, answers after them count.
    ("<think>maybe \\boxed{4}</think> So \\boxed{5}.", "5", "math500", True, "correct"),
    # An unparsable gold cannot be scored.
    ("\\boxed{5}", "\\frac{", "math500", None, "gold_unscorable"),
]


@pytest.mark.parametrize(("pred", "gold", "task", "correct", "status"), CASES)
def test_rule(pred, gold, task, correct, status):
    result = score_response(pred, gold, task)
    assert (result.correct, result.status) == (correct, status), result


def test_gsm8k_reports_strict_and_flexible_matches():
    strict_and_flexible = score_response("So 3 + 4 = 7.\n#### 7", "#### 7", "gsm8k")
    assert strict_and_flexible.extra == {"strict_match": True, "flexible_extract": True}
    flexible_only = score_response("So 3 + 4 = 7 apples.", "#### 7", "gsm8k")
    assert flexible_only.extra == {"strict_match": False, "flexible_extract": True}
    assert flexible_only.correct


def test_unknown_task_is_an_error():
    with pytest.raises(ValueError, match="unknown grading task"):
        score_response("\\boxed{1}", "1", "nonsense")
