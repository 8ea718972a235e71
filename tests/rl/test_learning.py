"""Learning dynamics on the testbed: from the warmed-up tiny model, vanilla RL raises the reward and EM
learns when to write code.

The warmed-up model answers cot-sufficient problems but almost never chooses code under `auto`, so
code-necessary problems fail. RL's outcome reward finds the rare code rollouts and reinforces them:
the code rate climbs and the reward with it (and, as the paper reports for vanilla RL, the policy
drifts towards code everywhere).

The RL test trains on the cot-sufficient and code-necessary kinds, where code never loses. On the
full mix, whose code-unhelpful stories punish code, vanilla RL did not find code at all in 40 steps
here (code rate 0-2%, mean reward 0.63 over the first ten steps, 0.52 over the last): one decision
shared by every query, pushed towards CoT wherever code hurts, is what EM's per-query E-step is
for; the miniature board shows it over seeds."""

from __future__ import annotations

import json
import statistics

import pytest

from harness.rl.config import preset
from harness.rl.trainer import RLTrainer

STEPS = 40
WINDOW = 10
MIN_RISE = 0.15  # seen here (TRL trainer, arith v2): 0.54 over the first ten steps, 0.97 over the last ten
WHERE_CODE_NEVER_LOSES = {"split": "train", "size": 2000, "kinds": ["cot-sufficient", "code-necessary"]}


# The warm-up fixture (~4 min on 2 idle cores) runs in this test's setup, which pytest-timeout counts.
@pytest.mark.timeout(1800)
def test_vanilla_rl_raises_the_mean_reward_and_logs_code_rate_per_kind(warmed_testbed_model, tmp_path):
    config = preset("tiny").updated(model=str(warmed_testbed_model), output_dir=str(tmp_path), steps=STEPS,
                                    save_every=10_000, device="cpu", seed=0, task_args=WHERE_CODE_NEVER_LOSES)
    history = RLTrainer(config).train()
    first = statistics.mean(step["reward"] for step in history[:WINDOW])
    last = statistics.mean(step["reward"] for step in history[-WINDOW:])
    assert last >= first + MIN_RISE, f"mean reward {first:.3f} over the first {WINDOW} steps, {last:.3f} over the last"
    assert history[-1]["code_rate"] > history[0]["code_rate"]
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == STEPS
    kinds = {name.split("/", 1)[1] for step in logged for name in step if name.startswith("code_rate/")}
    assert kinds == {"cot-sufficient", "code-necessary"}


@pytest.mark.timeout(1800)
def test_em_learns_to_write_code_where_code_is_needed_and_not_elsewhere(warmed_testbed_model, tmp_path):
    """Two EM iterations (640 rollouts) from the warmed-up model: the miniature reproduction's first
    points, as a seeded test. Seen here: code-necessary accuracy 0 -> 0.88, code rate 0 -> 1.0 there,
    0.1 on cot-sufficient problems."""
    from harness.em.config import preset as em_preset
    from harness.em.trainer import EMTrainer
    from harness.eval.methods import load_method
    from harness.eval.tasks import load_samples, load_task
    from harness.sandbox import SandboxLimits, get_sandbox
    from harness.testbed.miniature import evaluate

    held_out = load_samples(load_task("arith"))[0]
    probe = [s for kind in ("cot-sufficient", "code-necessary") for s in [x for x in held_out if x.metadata["kind"] == kind][:30]]
    config = em_preset("tiny").updated(model=str(warmed_testbed_model), output_dir=str(tmp_path), iterations=2, device="cpu", seed=0)
    trainer = EMTrainer(config)
    trainer.train()
    with get_sandbox("local", limits=SandboxLimits(timeout_s=2.0)) as sandbox:
        after = evaluate(trainer.backend, probe, load_task("arith").grader, load_method("auto"), sandbox, config.max_tokens,
                         config.max_tool_calls)
    assert after["code-necessary"]["code_rate"] >= 0.6 and after["code-necessary"]["accuracy"] >= 0.5, after
    assert after["cot-sufficient"]["code_rate"] <= 0.4 and after["cot-sufficient"]["accuracy"] >= 0.8, after
