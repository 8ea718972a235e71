"""AdaTIR: a difficulty-aware efficiency penalty with clipped advantage shaping (Fang & Sun, "AdaTIR: Adaptive
Tool-Integrated Reasoning via Difficulty-Aware Policy Optimization", arXiv 2601.14696).

A question's difficulty is the failure rate of its group, φ_q = 1 − (1/G)·Σ_i 1[rollout i correct]. On easy
questions (φ_q < φ_low) a correct rollout pays for its tool calls, more the closer it comes to the cap::

    f(τ_i)  = sin(π/2 · N(τ_i) / N_max)           N: executed cells, N_max: max_tool_calls
    r_eff,i = −λ · f(τ_i)    if r_acc,i = 1 and φ_q < φ_low, else 0
    r_i     = r_acc,i + r_eff,i

GRPO normalises r_i within the group. Sign reversal: on an easy group the penalty alone can push a correct
rollout's advantage below zero, teaching the model that a right answer was bad. Clipped Advantage Shaping
(CAS) keeps correctness first: after normalisation a correct rollout's advantage is max(A_i, 0), so a tool
penalty can lower it to zero but never turn it negative; wrong rollouts keep theirs. (Our reading of CAS:
the floor of 0 for correct rollouts is what the paper's "a tool penalty never turns a correct rollout's
advantage negative" requires; the exact clipping form of the paper was not available to us.)
Constants (chosen here, named): ``PENALTY_WEIGHT`` λ = 0.5, ``EASY_BELOW`` φ_low = 0.5 (easy: more than
half the group right), ``ADVANTAGE_FLOOR`` = 0.
"""

from __future__ import annotations

import math

from harness.rl.strategies import RolloutBatch, Shaping

PENALTY_WEIGHT = 0.5
EASY_BELOW = 0.5
ADVANTAGE_FLOOR = 0.0


def tool_penalty(calls: int, max_calls: int) -> float:
    return math.sin(math.pi / 2 * min(calls, max_calls) / max_calls) if max_calls else 0.0


class AdaTIR:
    def shape(self, batch: RolloutBatch) -> Shaping:
        rewards = [float(ok) for ok in batch.correct]
        for group in batch.groups():
            difficulty = 1 - sum(batch.correct[i] for i in group) / len(group)
            if difficulty < EASY_BELOW:
                for i in group:
                    if batch.correct[i]:
                        rewards[i] -= PENALTY_WEIGHT * tool_penalty(batch.tool_calls[i], batch.max_tool_calls)
        return Shaping(rewards, correct_advantage_floor=ADVANTAGE_FLOOR)
