"""Answer extraction as a table: response -> (answer, method)."""

from __future__ import annotations

import pytest

from harness.grading.extract import extract_answer, gold_answer

CASES = [
    ("so $\\boxed{\\frac{1}{2}}$.", "math500", "\\frac{1}{2}", "boxed"),
    ("nested \\boxed{\\frac{a}{\\sqrt{b^{2}}}} done", "math500", "\\frac{a}{\\sqrt{b^{2}}}", "boxed"),
    ("first \\boxed{1} then \\boxed{2}. Rechecking, we get \\boxed{3}", "math500", "3", "boxed"),
    ("\\boxed 5 is it", "math500", "5", "boxed"),
    ("\\fbox{7}", "math500", "7", "boxed"),
    ("roots: \\boxed{1}, \\boxed{2}", "math500", "1, 2", "boxed"),
    ("\\boxed{1} papers and \\boxed{2} bins", "math500", "1, 2", "boxed"),
    ("\\boxed{12}. Final Answer: The final answer is $14$. I hope it is correct.", "math500", "$14$", "phrase"),
    ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "math500", "$\\frac{3}{4}$", "phrase"),
    ("Therefore the answer is 42.", "math500", "42", "phrase"),
    ("Work...\nAnswer: 17", "math500", "17", "answer_line"),
    ("Natalia sold 48/2 = 24 clips.\n#### 72", "gsm8k", "72", "gsm8k_strict"),
    ("<think>\\boxed{1}</think>\\boxed{2}", "math500", "2", "boxed"),
    ("<think>\\boxed{1}", "math500", None, "unclosed_think"),
    ("```python\nprint(1)\n```\n```output\n1\n```", "math500", None, "ends_in_tool_output"),
    ("```python\nprint(1)\n```\n```output\n\\boxed{9}\n```\nSo \\boxed{1}.", "math500", "1", "boxed"),
    ("7,425,000", "math500", "7,425,000", "bare"),
    ("So we get \\boxed{unclosed and then more words", "math500", None, "fallback"),
]


@pytest.mark.parametrize(("response", "task", "answer", "method"), CASES)
def test_extract(response, task, answer, method):
    found = extract_answer(response, task)
    assert (found.answer, found.method) == (answer, method)


def test_fallback_is_the_prose_after_the_last_code_block():
    found = extract_answer("Let x = 3.\n```python\nprint(99)\n```\nHence the total is 12 dollars overall, as computed")
    assert found.answer is None and found.fallback.strip().startswith("Hence the total is 12")


@pytest.mark.parametrize(
    ("gold", "expected"),
    [(27.0, "27"), ("025", "025"), ("work <<1+1=2>>\n#### 1,234", "1,234"), ("so $\\boxed{\\frac12}$", "\\frac12")],
)
def test_gold_answer(gold, expected):
    assert gold_answer(gold) == expected
