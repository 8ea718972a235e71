"""The rollout engine against a scripted policy and the real local sandbox."""

from __future__ import annotations

import pytest

from harness.eval.rollout import TOOL_STOP, RolloutEngine, last_code_block, tool_segment_text
from harness.models import SamplingParams
from harness.sandbox import SandboxLimits, get_sandbox

from .scripted import ScriptedBackend

CODE = "Let me compute.\n```python\nx = 6 * 7\nprint(x)\n```\n```output\nSHOULD NOT APPEAR"


@pytest.fixture(scope="module")
def sandbox():
    with get_sandbox("local", limits=SandboxLimits(timeout_s=1.0)) as box:
        yield box


def run(script, sandbox, prompts=("Q1",), **kwargs):
    backend = ScriptedBackend(script)
    engine = RolloutEngine(backend, SamplingParams(), tools=kwargs.pop("tools", True), sandbox=sandbox, **kwargs)
    return engine.run([backend.encode(p) for p in prompts], list(range(len(prompts)))), backend, engine


def test_code_runs_and_output_is_fed_back(sandbox):
    def script(text):
        return CODE if TOOL_STOP not in text else "So the answer is \\boxed{42}."

    [trajectory], _, engine = run(script, sandbox)
    assert [s.kind for s in trajectory.segments] == ["model", "tool", "model"]
    assert trajectory.segments[0].text.endswith("```output")
    assert "SHOULD NOT APPEAR" not in trajectory.response_text
    assert trajectory.segments[1].text == "\n42\n```\n"
    assert trajectory.tool_calls[0].status == "ok" and trajectory.tool_calls[0].code == "x = 6 * 7\nprint(x)\n"
    assert trajectory.finish_reason == "eos" and trajectory.response_text.endswith("\\boxed{42}.")
    assert engine.stats.cells == 1


def test_loss_mask_covers_model_tokens_only(sandbox):
    def script(text):
        return CODE if TOOL_STOP not in text else "done"

    [trajectory], _, _ = run(script, sandbox)
    mask = trajectory.loss_mask
    assert len(mask) == len(trajectory.response_ids)
    tool = trajectory.segments[1]
    start = len(trajectory.segments[0].token_ids)
    assert mask[start : start + len(tool.token_ids)] == [0] * len(tool.token_ids)
    assert sum(mask) == len(trajectory.response_ids) - len(tool.token_ids)


def test_state_persists_across_cells(sandbox):
    def script(text):
        calls = text.count(TOOL_STOP)
        if calls == 0:
            return "```python\ny = 5\n```\n```output"
        if calls == 1:
            return "```python\nprint(y * 2)\n```\n```output"
        return "\\boxed{10}"

    [trajectory], _, _ = run(script, sandbox)
    assert trajectory.tool_calls[1].feedback.strip() == "10"


def test_tool_call_cap_ends_the_trajectory(sandbox):
    [trajectory], _, _ = run(lambda text: "```python\nprint(1)\n```\n```output", sandbox, max_tool_calls=2)
    assert len(trajectory.tool_calls) == 2
    assert trajectory.finish_reason == "tool_cap"


def test_output_request_without_code_ends_the_trajectory(sandbox):
    [trajectory], _, _ = run(lambda text: "No code here\n```output", sandbox)
    assert trajectory.finish_reason == "no_code" and not trajectory.tool_calls


def test_timeout_is_reported_to_the_model_and_the_session_recovers(sandbox):
    def script(text):
        calls = text.count(TOOL_STOP)
        if calls == 0:
            return "```python\nz = 3\n```\n```output"
        if calls == 1:
            return "```python\nwhile True: pass\n```\n```output"
        if calls == 2:
            return "```python\nprint(z)\n```\n```output"
        return "\\boxed{3}"

    [trajectory], _, _ = run(script, sandbox)
    statuses = [call.status for call in trajectory.tool_calls]
    assert statuses == ["ok", "timeout", "ok"]
    assert "time" in trajectory.tool_calls[1].feedback.lower()
    assert trajectory.tool_calls[2].feedback.strip() == "3"


def test_errors_come_back_as_the_last_traceback_line(sandbox):
    def script(text):
        return "```python\n1/0\n```\n```output" if TOOL_STOP not in text else "oops"

    [trajectory], _, _ = run(script, sandbox)
    assert trajectory.tool_calls[0].status == "error"
    assert "ZeroDivisionError" in trajectory.segments[1].text
    assert "Traceback" not in trajectory.segments[1].text


def test_token_budget_counts_model_and_tool_tokens(sandbox):
    [trajectory], _, _ = run(lambda text: "```python\nprint('x' * 500)\n```\n```output", sandbox, max_tokens=120)
    assert len(trajectory.response_ids) == 120
    assert trajectory.finish_reason == "length"


def test_without_tools_the_output_marker_is_just_text(sandbox):
    [trajectory], _, _ = run(lambda text: CODE, sandbox, tools=False)
    assert trajectory.finish_reason == "eos" and not trajectory.tool_calls
    assert trajectory.response_text == CODE


def test_each_round_is_one_batched_generate_call(sandbox):
    def script(text):
        return CODE if TOOL_STOP not in text else "\\boxed{42}"

    trajectories, backend, _ = run(script, sandbox, prompts=("a", "b", "c"))
    assert backend.calls == [3, 3]
    assert all(t.tool_calls[0].feedback.strip() == "42" for t in trajectories)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("```python\na=1\n```\n```output", "a=1\n"),
        ("```python\na=1\n```\ntext\n```python\nb=2\n```\n```output", "b=2\n"),
        ("no code ```output", None),
    ],
)
def test_last_code_block(text, code):
    assert last_code_block(text) == code


def test_tool_segment_text_closes_the_block():
    assert tool_segment_text("...```output", "5\n") == "\n5\n```\n"
    assert tool_segment_text("...```output\n", "5") == "5\n```\n"


def test_a_forced_prefix_starts_the_response_and_is_a_model_segment(sandbox):
    backend = ScriptedBackend(lambda text: "```python\nprint(7)\n```\n```output" if TOOL_STOP not in text else "\\boxed{7}")
    engine = RolloutEngine(backend, SamplingParams(), tools=True, sandbox=sandbox)
    prefix = backend.encode("Let's write a program.\n")
    [trajectory] = engine.run([backend.encode("Q")], [0], prefixes=[prefix])
    assert trajectory.response_text.startswith("Let's write a program.\n```python")
    assert trajectory.loss_mask[: len(prefix)] == [1] * len(prefix)
    assert trajectory.tool_calls[0].feedback.strip() == "7"


def test_a_prefix_that_fills_the_budget_ends_the_response_without_generating(sandbox):
    backend = ScriptedBackend(lambda text: "\\boxed{7}")
    prefix = backend.encode("Let's write a program.\n")
    engine = RolloutEngine(backend, SamplingParams(), tools=True, sandbox=sandbox, max_tokens=len(prefix))
    forced, free = engine.run([backend.encode("Q"), backend.encode("Q")], [0, 1], prefixes=[prefix, []])
    assert (forced.response_ids, forced.finish_reason) == (prefix, "length")  # cut at the budget, nothing generated
    assert free.response_text == "\\boxed{7}"
    [alone] = engine.run([backend.encode("Q")], [0], prefixes=[prefix])  # with no other response to carry the round
    assert alone.finish_reason == "length"
