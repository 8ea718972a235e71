"""GRPO-RoC, Resample-on-Correct (Shang et al., "rStar2-Agent: Agentic Reasoning Technical Report",
arXiv 2508.20722): roll out an oversampled group of 2G, keep G for the update.

The kept G hold the group's share of correct rollouts (round(G · n_pos / 2G), halves up). Wrong rollouts
are kept uniformly at random, so every way of failing can be learned from; correct ones are kept cleanest
first, by the penalty::

    p_err = (failed cells) / (executed cells)     if the rollout executed a cell
            NO_TOOL_PENALTY                       otherwise

(the paper adds a format penalty, e.g. for more than one final answer; our protocol grades one final
answer, so that term is 0 here). rStar2-Agent samples correct rollouts with probabilities falling with the penalty; we take the
lowest penalties (ties: the earlier rollout), which is that rule's limit and makes the kept set exact.
Constants: ``NO_TOOL_PENALTY`` = 0.5 (the value rStar2-Agent gives a rollout without tool calls, as we
read the paper; it ranks such a rollout behind clean tool use and ahead of one whose cells mostly failed). ``group_size`` is the
oversampled 2G. Dropped rollouts get reward NaN: TRL leaves them out of the group's mean and std, and the
hook takes them out of the loss.
"""

from __future__ import annotations

import random

from harness.rl.strategies import RolloutBatch, Shaping

NO_TOOL_PENALTY = 0.5


def error_penalty(calls: int, failures: int) -> float:
    return failures / calls if calls else NO_TOOL_PENALTY


def kept(batch: RolloutBatch, group: range, rng: random.Random) -> list[int]:
    keep = len(group) // 2
    right = [i for i in group if batch.correct[i]]
    wrong = [i for i in group if not batch.correct[i]]
    keep_right = int(len(right) * keep / len(group) + 0.5)
    cleanest = sorted(right, key=lambda i: (error_penalty(batch.tool_calls[i], batch.tool_failures[i]), i))[:keep_right]
    return sorted(cleanest + rng.sample(wrong, keep - keep_right))


class ResampleOnCorrect:
    def shape(self, batch: RolloutBatch) -> Shaping:
        rng = random.Random(batch.seed)
        rewards = [float("nan")] * len(batch.correct)
        for group in batch.groups():
            for i in kept(batch, group, rng):
                rewards[i] = float(batch.correct[i])
        return Shaping(rewards)
