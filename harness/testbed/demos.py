"""Demonstrations for the SFT warm-up, written by the arith solver in both styles.

Each row is a conversation exactly as eval builds it (the method's messages, to be wrapped by the
model's chat template) and a response as segments, the way the rollout engine records one:

* CoT:  model "Let's reason step by step.\\n<step>\\nThe answer is \\boxed{N}."
* code: model "Let's write a program.\\n```python\\n<program>```\\n```output",
        tool  "\\n<what the program printed>\\n```\\n"   (tool_segment_text, masked out of the loss),
        model "The answer is \\boxed{P}."   (P: what the program printed)

On code-unhelpful stories the program computes the trap, so P is wrong there: the demonstrations
teach a code habit that misreads such questions, which is what makes code hurt on that kind.

The opening sentence is the decision c of the paper (code or not), so RL/EM trainers can force or
measure it with a prefix. Which style a row uses follows its prompt: the explicit methods fix it
(cot and cot-trigger reason, code-trigger and tir write code), and under auto, the model's own
choice, a row writes code with probability ``code_ratio``. That makes the start the paper
describes: a model that can write code when asked but rarely chooses to.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from harness.eval.methods import load_method
from harness.eval.rollout import TOOL_STOP, tool_segment_text
from harness.testbed.arith import (
    Problem,
    code_program,
    cot_solution,
    problems,
    run_program,
)

COT_OPENING = "Let's reason step by step.\n"
CODE_OPENING = "Let's write a program.\n"
FORCED_STYLE = {"cot": "cot", "cot-trigger": "cot", "code-trigger": "code", "tir": "code"}
FREE_METHOD = "auto"


def cot_segments(problem: Problem) -> list[dict]:
    return [{"kind": "model", "text": COT_OPENING + cot_solution(problem)}]


def code_segments(problem: Problem) -> list[dict]:
    program = code_program(problem)
    call = f"{CODE_OPENING}```python\n{program}```\n{TOOL_STOP}"
    output = run_program(program)
    return [
        {"kind": "model", "text": call},
        {"kind": "tool", "text": tool_segment_text(call, output)},
        {"kind": "model", "text": f"The answer is \\boxed{{{output.strip()}}}."},
    ]


def demonstration_rows(size: int, seed: int = 0, code_ratio: float = 0.02, forced_share: float = 0.5) -> list[dict]:
    """``size`` demonstrations on train problems; ``forced_share`` of them use an explicit method prompt."""
    if not 0.0 <= code_ratio <= 1.0 or not 0.0 <= forced_share <= 1.0:
        raise ValueError("code_ratio and forced_share must be between 0 and 1")
    rng = random.Random(f"demos:{seed}")
    methods = {name: load_method(name) for name in (*FORCED_STYLE, FREE_METHOD)}
    rows = []
    for problem in problems("train", size, seed):
        if rng.random() < forced_share:
            method = rng.choice(sorted(FORCED_STYLE))
            style = FORCED_STYLE[method]
        else:
            method = FREE_METHOD
            style = "code" if rng.random() < code_ratio else "cot"
        segments = code_segments(problem) if style == "code" else cot_segments(problem)
        rows.append({
            "messages": methods[method].messages(problem.question),
            "segments": segments,
            "method": method,
            "style": style,
            "answer": str(problem.answer),
            "kind": problem.kind,
            "level": problem.level,
            "op": problem.op,
        })
    return rows


def write_demonstrations(path: Path, rows: list[dict]) -> dict:
    """Write JSONL and return counts a user can check the mix against."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    free = [row for row in rows if row["method"] == FREE_METHOD]
    return {
        "rows": len(rows),
        "code_rows": sum(row["style"] == "code" for row in rows),
        "free_choice_rows": len(free),
        "free_choice_code_rows": sum(row["style"] == "code" for row in free),
    }
