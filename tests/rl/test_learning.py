"""Learning dynamics on the testbed: from the warmed-up tiny model, vanilla RL raises the reward.

The warmed-up model answers cot-sufficient problems but almost never chooses code under `auto`, so
code-necessary problems fail. RL's outcome reward finds the rare code rollouts and reinforces them:
the code rate climbs and the reward with it (and, as the paper reports for vanilla RL, the policy
drifts towards code everywhere)."""

from __future__ import annotations

import json
import statistics

import pytest

from harness.rl.config import preset
from harness.rl.trainer import RLTrainer

STEPS = 40
WINDOW = 10
MIN_RISE = 0.15  # seen here: 0.35 over the first ten steps, 0.64 over the last ten


# The warm-up fixture (~4 min on 2 idle cores) runs in this test's setup, which pytest-timeout counts.
@pytest.mark.timeout(1800)
def test_vanilla_rl_raises_the_mean_reward_and_logs_code_rate_per_kind(warmed_testbed_model, tmp_path):
    config = preset("tiny").updated(model=str(warmed_testbed_model), output_dir=str(tmp_path), steps=STEPS,
                                    save_every=10_000, device="cpu", seed=0)
    history = RLTrainer(config).train()
    first = statistics.mean(step["reward"] for step in history[:WINDOW])
    last = statistics.mean(step["reward"] for step in history[-WINDOW:])
    assert last >= first + MIN_RISE, f"mean reward {first:.3f} over the first {WINDOW} steps, {last:.3f} over the last"
    assert history[-1]["code_rate"] > history[0]["code_rate"]
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == STEPS
    kinds = {name.split("/", 1)[1] for step in logged for name in step if name.startswith("code_rate/")}
    assert kinds == {"cot-sufficient", "code-necessary", "code-unhelpful"}
