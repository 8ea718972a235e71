"""What goes back to the model: capped output with head and tail, short errors, clear timeouts."""

from __future__ import annotations

import pytest

from harness.sandbox import CellResult, SandboxLimits
from harness.sandbox.result import cap_text


@pytest.mark.parametrize("size,limit", [(10, 20), (5000, 1000), (123456, 400), (1001, 1000), (50, 5)])
def test_cap_text_fits_and_keeps_head_and_tail(size, limit):
    text = "".join(chr(ord("a") + i % 26) for i in range(size))
    capped = cap_text(text, limit)
    assert len(capped) <= limit
    if size <= limit:
        assert capped == text
    elif limit > 60:
        assert capped.startswith(text[:10]) and capped.endswith(text[-10:]) and "characters cut" in capped


def test_error_feedback_is_the_last_traceback_line_unless_full_is_asked():
    traceback_text = 'Traceback (most recent call last):\n  File "<cell 1>", line 1\nZeroDivisionError: division by zero\n'
    result = CellResult(status="error", stdout="partial\n", stderr=traceback_text, traceback=traceback_text,
                        error="ZeroDivisionError: division by zero")
    assert result.feedback() == "partial\nZeroDivisionError: division by zero"
    assert "Traceback" in result.feedback(full_traceback=True)


def test_error_survives_a_tiny_cap_and_timeout_says_so():
    result = CellResult(status="timeout", stdout="x" * 5000, error="TimeoutError: the cell did not finish within 5 s",
                        restarted=True, output_chars=200)
    feedback = result.feedback()
    assert "did not finish within 5 s" in feedback and "restarted" in feedback
    assert len(feedback) <= 200 + len("\n(the session was restarted; variables from earlier successful cells were restored)")


def test_limits_are_validated_and_overridable():
    with pytest.raises(ValueError):
        SandboxLimits(timeout_s=0)
    assert SandboxLimits().with_overrides(timeout_s=2.5, memory_mb=None).timeout_s == 2.5
