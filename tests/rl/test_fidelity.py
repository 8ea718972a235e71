"""Fidelity to the paper's method: the E-step's decision rules and labels by content (train-rl's clip acting
after the first step is in test_grpo_signal.py)."""

from __future__ import annotations

import math

import pytest

from harness.em.config import EMConfig
from harness.em.config import preset as em_preset
from harness.em.estep import content_labels, decision_policy_from_logprobs
from harness.rl.config import preset as rl_preset

from .test_mutations import PROMPT, em_trainer
from .test_trainer import task_file, tiny_model_dir  # noqa: F401 - shared fixtures


def record(decision: str, correct: bool, used_code: bool, prompt_ids=(1, 2, 3)) -> dict:
    return {"doc_id": "q", "decision": decision, "correct": correct, "status": "correct" if correct else "incorrect",
            "used_code": used_code, "prompt_ids": list(prompt_ids)}


def test_content_labels_relabel_drop_or_keep_a_forced_rollout_that_did_otherwise():
    told_cot_ran_code, told_code_ran_none, obeyed = record("cot", True, True), record("code", False, False), record("cot", True, False)
    pool = [told_cot_ran_code, told_code_ran_none, obeyed]
    relabelled = content_labels(pool, "relabel")
    assert [r["decision"] for r in relabelled] == ["code", "cot", "cot"]
    assert relabelled[0]["forced_decision"] == "cot" and "forced_decision" not in relabelled[2]
    assert content_labels(pool, "drop") == [obeyed]
    assert [r["decision"] for r in content_labels(pool, "off")] == ["cot", "code", "cot"]
    assert told_cot_ran_code["decision"] == "cot"  # the E-step's records are not modified
    with pytest.raises(ValueError, match="content_labels"):
        content_labels(pool, "fix")


def pool_where_code_is_better_but_rarely_chosen() -> list[dict]:
    """Q̂(cot) = 0.5, Q̂(code) = 1.0; the free rollouts never write code, so π(code) is small."""
    cot = [record("cot", i % 2 == 0, False) for i in range(4)]
    code = [record("code", True, True) for _ in range(4)]
    free = [record("free", True, False) for _ in range(2)]
    return cot + code + free


@pytest.mark.parametrize("rule, chosen", [("q_argmax", "code"), ("pi_q_free", "cot")])
def test_decision_rules(tiny_model_dir, task_file, tmp_path, rule, chosen):  # noqa: F811
    """v1's code takes the argmax of Q̂ alone; π·Q̂ with π(code) = 0.05 from the free rollouts keeps CoT."""
    trainer = em_trainer(tiny_model_dir, task_file, tmp_path, decision_rule=rule, alpha=math.inf, free_rollouts=2)
    estep = trainer._reference(0, pool_where_code_is_better_but_rarely_chosen(), 0.0)
    assert estep["policy"]["q"] == pytest.approx({"cot": 0.95, "code": 0.05})
    assert estep["strategies"]["q"] == {"cot": float(chosen == "cot"), "code": float(chosen == "code")}


def test_content_labels_reach_the_value_estimate(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    pool = [record("cot", False, False), record("cot", True, True), record("code", True, True), record("free", True, False)]
    values = {}
    for mode in ("off", "relabel", "drop"):
        trainer = em_trainer(tiny_model_dir, task_file, tmp_path / mode, content_labels=mode)
        values[mode] = trainer._reference(0, pool, 0.0)["values"]["q"]
    assert values["off"] == {"cot": 0.5, "code": 1.0}
    assert values["relabel"] == {"cot": 0.0, "code": 1.0}  # the CoT-forced rollout that ran code counts for code
    assert values["drop"] == {"cot": 0.0, "code": 1.0}


def test_prefix_mean_rule_compares_prefixes_per_token(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    trainer = em_trainer(tiny_model_dir, task_file, tmp_path, decision_rule="pi_q_prefix_mean", free_rollouts=0,
                         cot_prefix="Let x.\n", code_prefix="Let's write a program to compute the answer.\n")
    prompt = trainer.backend.encode(PROMPT)
    prompts = {"q": prompt}
    sums = trainer.mstep.prefix_logprobs(prompts, grad=False)["q"]
    means = trainer.mstep.prefix_logprobs(prompts, grad=False, per_token=True)["q"]
    lengths = (len(trainer.prefix_ids["cot"]), len(trainer.prefix_ids["code"]))
    assert lengths[0] < lengths[1]
    assert means == pytest.approx((sums[0] / lengths[0], sums[1] / lengths[1]))
    policy = trainer._decision_policy([{"doc_id": "q", "decision": "cot", "prompt_ids": prompt}])["q"]
    assert policy == pytest.approx(decision_policy_from_logprobs(*means))
    assert policy != pytest.approx(decision_policy_from_logprobs(*sums))


def test_em_config_rules_and_removed_fields():
    assert EMConfig().decision_rule == "q_argmax" and EMConfig().content_labels == "relabel"
    with pytest.raises(ValueError, match="decision_rule"):
        EMConfig(decision_rule="pi_q")
    with pytest.raises(ValueError, match="free_rollouts"):
        EMConfig(decision_rule="pi_q_free", free_rollouts=0)
    with pytest.raises(ValueError, match="unknown config keys: policy_estimate"):
        EMConfig.from_dict({"policy_estimate": "prefix_logprob"})


def test_tiny_presets_of_rl_and_em_match():
    rl, em = rl_preset("tiny"), em_preset("tiny")
    assert (rl.learning_rate, rl.lr_schedule, rl.warmup_steps, rl.top_p, rl.temperature) == \
        (em.learning_rate, em.lr_schedule, em.warmup_ratio, em.top_p, em.temperature)


def test_the_7b_presets_of_rl_and_em_match():
    """Vanilla RL is EM's baseline: same data, rollout budget, response budget, sampling and batch. The optimiser
    settings differ on purpose (on-policy GRPO at its recipes' 1e-6 constant, EM at v1's 2e-5 cosine);
    tests/test_paper_fidelity.py holds each against the paper."""
    rl, em = rl_preset("qwen2.5-7b"), em_preset("paper-7b")
    assert (rl.model, rl.task, rl.task_args, rl.max_tokens, rl.temperature, rl.top_p) == \
        (em.model, em.task, em.task_args, em.max_tokens, em.temperature, em.top_p)
    assert rl.group_size == 2 * em.k + em.free_rollouts  # rollouts per query
    assert rl.steps * rl.prompts_per_step == em.iterations * em.queries_per_iteration  # queries rolled out in all
    assert rl.prompts_per_step * rl.group_size == em.batch_size  # sequences per optimiser step
    assert (rl.micro_batch_size, rl.gradient_checkpointing) == (em.micro_batch_size, em.gradient_checkpointing)
