"""Fast tests (tiny random models, seconds) that fail when the EM trainer's learning signal is broken
(train-rl's are in test_grpo_signal.py).

Each guards against one mutation of the source that every other fast test let through before: a flipped
policy-gradient sign, a zeroed M-step loss or decision cross-entropy, tool tokens let through the loss
mask, the importance-weight cap ignored, π_old misaligned by one token, a resume that restores the wrong
optimiser state. They go through the trainer's own code paths (``MStep.run`` and
``MStep.optimiser_step``), not copies of the loss, so a mutation anywhere on the path is seen. The mutation
table in docs/em.md lists which test caught which mutation.
"""

from __future__ import annotations

import math

import pytest
import torch

from harness.em.trainer import EMTrainer
from harness.training.batch import batch_logprobs

from .em_records import em_record
from .test_em_trainer import config as em_config
from .test_em_trainer import stop_at_optimiser_step
from .test_trainer import task_file, tiny_model_dir  # noqa: F401 - shared fixtures

PROMPT = "What is 2 + 2?"
ANSWER = "We compute 2 + 2 = 4. The answer is 4."
TOOL_TAIL_A = "```output\n4\n```"
TOOL_TAIL_B = "```output\n5\n```"


# ---------------------------------------------------------------- helpers
def em_trainer(model_dir, task, out, **overrides) -> EMTrainer:
    values = dict(advantage="sign", kl_weight=0.0, decision_weight=0.0, learning_rate=1e-3, batch_size=1, micro_batch_size=1)
    return EMTrainer(em_config(model_dir, task, out, **{**values, **overrides}))


def rollout(trainer, text: str = ANSWER, *, correct: bool = True, tool_tail: str | None = None, forced: int = 0) -> dict:
    response = trainer.backend.encode(text)
    mask = [1] * len(response)
    if tool_tail:
        tail = trainer.backend.encode(tool_tail)
        response, mask = response + tail, mask + [0] * len(tail)
    return em_record("q", trainer.backend.encode(PROMPT), response, mask, forced_tokens=forced, correct=correct)


def logprobs(trainer, record: dict) -> torch.Tensor:
    with torch.no_grad():
        return batch_logprobs(trainer.model, trainer.mstep.batch([record])).cpu()


def sequence_logprob(trainer, record: dict) -> float:
    return float((logprobs(trainer, record) * trainer.mstep.batch([record]).mask).sum())


def current_logprobs(trainer, record: dict) -> torch.Tensor:
    """π_old rows as ``_pi_old`` stores them: the model's per-token log-probs on the exact training row."""
    return logprobs(trainer, record)[0]


class RecordingOptimiser:
    """Stands in for AdamW in ``optimiser_step``: keeps the gradient it was asked to apply, changes nothing."""

    def __init__(self, model) -> None:
        self.model, self.gradients = model, None

    def step(self) -> None:
        self.gradients = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                    for p in self.model.parameters()])

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.model.zero_grad(set_to_none=set_to_none)


def em_gradient(trainer, record: dict, advantage: float, old: torch.Tensor, strategies=None) -> torch.Tensor:
    optimiser = RecordingOptimiser(trainer.model)
    trainer.mstep.optimiser_step([(record, advantage)], [old], strategies or {"q": {"cot": 1.0, "code": 0.0}}, optimiser)
    return optimiser.gradients


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ---------------------------------------------------------------- the policy-gradient sign
@pytest.mark.parametrize("correct", [True, False])
def test_em_m_step_raises_a_right_sample_and_lowers_a_wrong_one(tiny_model_dir, task_file, tmp_path, correct):  # noqa: F811
    trainer = em_trainer(tiny_model_dir, task_file, tmp_path)
    record = rollout(trainer, correct=correct)
    (tmp_path / "iter-1").mkdir()
    before = sequence_logprob(trainer, record)
    trainer.mstep.run(0, {"training": [(record, 1.0)], "strategies": {"q": {"cot": 1.0, "code": 0.0}}})
    after = sequence_logprob(trainer, record)
    assert (after - before) * (1 if correct else -1) > 0, (before, after)


# ---------------------------------------------------------------- the decision cross-entropy
def test_em_step_moves_the_decision_toward_the_reference_strategy(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    trainer = em_trainer(tiny_model_dir, task_file, tmp_path, decision_weight=1.0)
    record = rollout(trainer)
    prompts = {"q": record["prompt_ids"]}
    before = trainer.mstep.prefix_logprobs(prompts, grad=False)["q"]
    optimiser = torch.optim.AdamW(trainer.model.parameters(), lr=1e-3, weight_decay=0.0)
    # advantage 0 and no KL: the decision cross-entropy is the only term with a gradient
    trainer.mstep.optimiser_step([(record, 0.0)], [current_logprobs(trainer, record)], {"q": {"cot": 0.0, "code": 1.0}}, optimiser)
    after = trainer.mstep.prefix_logprobs(prompts, grad=False)["q"]
    assert (after[1] - after[0]) > (before[1] - before[0]), (before, after)


# ---------------------------------------------------------------- the loss mask
def test_em_gradient_ignores_tool_tokens(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    trainer = em_trainer(tiny_model_dir, task_file, tmp_path, kl_weight=0.5)
    gradients = []
    for tail in (TOOL_TAIL_A, TOOL_TAIL_B):
        record = rollout(trainer, tool_tail=tail)
        gradients.append(em_gradient(trainer, record, 0.01, current_logprobs(trainer, record) - 0.1))
    assert gradients[0].abs().sum() > 0
    assert torch.allclose(gradients[0], gradients[1], atol=1e-7)


def test_em_forced_prefix_gets_no_policy_gradient(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    trainer = em_trainer(tiny_model_dir, task_file, tmp_path)
    prefix = len(trainer.prefix_ids["cot"])
    forced = rollout(trainer, "Let's reason step by step.\n" + ANSWER, forced=prefix)
    batch = trainer.mstep.batch([forced])
    start = len(forced["prompt_ids"]) - 1  # position predicting the first response token
    assert batch.mask[0, start : start + prefix].sum() == 0 and batch.mask[0, start + prefix :].sum() > 0
    unforced = dict(forced, forced_tokens=0)
    old = current_logprobs(trainer, forced)
    assert not torch.allclose(em_gradient(trainer, forced, 0.01, old), em_gradient(trainer, unforced, 0.01, old))


# ---------------------------------------------------------------- the importance-weight cap
def test_em_importance_weight_is_capped(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    trainer = em_trainer(tiny_model_dir, task_file, tmp_path, rho_cap=1.2)
    record = rollout(trainer)
    now = current_logprobs(trainer, record)
    at_cap = em_gradient(trainer, record, 0.01, now - math.log(1.2))  # ρ = 1.2
    far_above = em_gradient(trainer, record, 0.01, now - 3.0)  # ρ = e³ ≈ 20, capped to 1.2
    at_one = em_gradient(trainer, record, 0.01, now)  # ρ = 1
    assert relative_difference(far_above, at_cap) < 1e-4
    assert relative_difference(at_one * 1.2, at_cap) < 1e-4


# ---------------------------------------------------------------- π_old alignment: ρ is exactly 1 on the first step
def test_em_first_step_ratio_is_exactly_one(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    import harness.em.mstep as mstep_module

    trainer = em_trainer(tiny_model_dir, task_file, tmp_path)
    real, seen = mstep_module.mstep_loss, []

    def watched(logprobs, old_logprobs, advantages, mask, *args, **kwargs):
        seen.append(float(((logprobs - old_logprobs).abs() * mask).max().detach()))
        return real(logprobs, old_logprobs, advantages, mask, *args, **kwargs)

    monkeypatch.setattr(mstep_module, "mstep_loss", watched)
    (tmp_path / "iter-1").mkdir()
    records = [rollout(trainer), rollout(trainer, "```python\nprint(2 + 2)\n```", tool_tail=TOOL_TAIL_A, correct=False)]
    trainer.mstep.run(0, {"training": [(r, 1.0) for r in records], "strategies": {"q": {"cot": 1.0, "code": 0.0}}})
    assert seen and seen[0] < 1e-5, seen


# ---------------------------------------------------------------- resume restores the optimiser state
def test_em_resume_mid_m_step_restores_the_optimiser_state(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    from harness.training.checkpoint import latest_checkpoint, load_weights

    def estep(trainer):
        records = [rollout(trainer), rollout(trainer, "The answer is 5.", correct=False), rollout(trainer, "It is 4.")]
        return {"training": [(r, 1.0) for r in records], "strategies": {"q": {"cot": 1.0, "code": 0.0}}}

    settings = dict(learning_rate=1e-2, save_every=1)
    straight = em_trainer(tiny_model_dir, task_file, tmp_path / "straight", **settings)
    (tmp_path / "straight" / "iter-1").mkdir()
    straight.mstep.run(0, estep(straight))

    interrupted = em_trainer(tiny_model_dir, task_file, tmp_path / "resumed", **settings)
    (tmp_path / "resumed" / "iter-1").mkdir()
    stop_at_optimiser_step(monkeypatch, 3, lambda: interrupted.mstep.run(0, estep(interrupted)))
    resumed = em_trainer(tiny_model_dir, task_file, tmp_path / "resumed", **settings)
    load_weights(latest_checkpoint(tmp_path / "resumed"), resumed.model)
    resumed.mstep.run(0, estep(resumed), start_step=2)
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
