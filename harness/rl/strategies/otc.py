"""OTC-GRPO: reward correct answers reached with the fewest tool calls (Wang et al., "Acting Less is Reasoning
More! Teaching Model to Act Efficiently", arXiv 2504.14870, the OTC-PO paper; its OTC-GRPO reward).

For a rollout with m executed cells, in a group whose correct rollouts used at least n cells (n is the
group's estimate of the optimal number of calls for the question)::

    f(m, n) = 0                 if m = n = 0
              m                 if n = 0
              2nm / (m + n)     otherwise

    r_tool  = 1                                  if f(m, n) = n = 0
              cos(m·π / (2m + c))                if n = 0
              sin(f(m, n)·π / (2n))              otherwise

    r = α · r_tool · r_correct

so a correct rollout with the group's fewest calls gets α, more calls get less (sin falls from 1 at m = n
towards 0 as m grows), and wrong rollouts get 0. A group with no correct rollout has no n; all its rewards
are 0 anyway. Constants (the paper leaves them to the user): ``ALPHA`` = 1 (the outcome reward's scale) and
``SMOOTHING_C`` = 1 (with n = 0, one cell gets cos(π/3) = 0.5, two get cos(2π/5) ≈ 0.31).
"""

from __future__ import annotations

import math

from harness.rl.strategies import RolloutBatch, Shaping

ALPHA = 1.0
SMOOTHING_C = 1.0


def tool_reward(m: int, n: int, c: float = SMOOTHING_C) -> float:
    if m == n == 0:
        return 1.0
    if n == 0:
        return math.cos(m * math.pi / (2 * m + c))
    f = 2 * n * m / (m + n)
    return math.sin(f * math.pi / (2 * n))


class OTC:
    def shape(self, batch: RolloutBatch) -> Shaping:
        rewards = [0.0] * len(batch.correct)
        for group in batch.groups():
            calls = [batch.tool_calls[i] for i in group if batch.correct[i]]
            for i in group:
                if batch.correct[i]:
                    rewards[i] = ALPHA * tool_reward(batch.tool_calls[i], min(calls))
        return Shaping(rewards)
