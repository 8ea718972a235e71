"""Fast tests (tiny random model, seconds) that fail when train-rl's learning signal is broken.

Each runs the real TRL-based trainer (RLTrainer → GRPOTrainer, our reward, our config mapping) for one or
two steps; only the rollouts are scripted (``scripted_rollouts``), so the batch is known: for every
prompt a right answer and a wrong one, optionally followed by tool-output tokens masked with ``env_mask``.
docs/em.md's mutation table lists which test caught which mutation.
"""

from __future__ import annotations

import re

import pytest
import torch

from harness.models.types import ModelBackend
from harness.rl.trainer import RLTrainer
from harness.training.batch import batch_logprobs, build_batch

from .test_trainer import config, task_file, tiny_model_dir  # noqa: F401 - shared fixtures

TOOL_TAIL = "\n```output\n{}\n```"


def answers(question: str) -> tuple[str, str]:
    total = 2 * int(re.search(r"\d+", question).group())
    return f"The answer is \\boxed{{{total}}}.", f"The answer is \\boxed{{{total + 1}}}."


def scripted_rollouts(monkeypatch, tool_output: str | None = None, wrong_every: int = 2) -> None:
    """Replace the RolloutEngine by a fixed script: every ``wrong_every``-th row answers wrong, the others right
    (by default even rows right, odd rows wrong); with ``tool_output``, each response ends in a tool-output block
    that env_mask hides from the loss."""

    def rollout(self, prompts, trainer):
        tokenizer = trainer.processing_class
        prompt_ids, completion_ids, masks = [], [], []
        for row, question in enumerate(prompts):
            ids = tokenizer.encode(answers(question)[row % wrong_every == wrong_every - 1], add_special_tokens=False)
            mask = [1] * len(ids)
            if tool_output is not None:
                tail = tokenizer.encode(TOOL_TAIL.format(tool_output), add_special_tokens=False)
                ids, mask = ids + tail, mask + [0] * len(tail)
            prompt_ids.append(tokenizer.encode(question, add_special_tokens=False))
            completion_ids.append(ids)
            masks.append(mask)
        texts = [tokenizer.decode(ids) for ids in completion_ids]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None, "env_mask": masks,
                "response_text": texts, "used_code": [False] * len(prompts),
                # Tool counts that differ between rows (what the strategies shape by), the same whichever process has the row.
                "tool_calls": [(row + len(q)) % 2 + row % 2 for row, q in enumerate(prompts)],
                "tool_failures": [row % 2 for row in range(len(prompts))]}

    monkeypatch.setattr("harness.rl.rollouts.RolloutFunc.__call__", rollout)


def answer_logprob(model, tokenizer, question: str, text: str) -> float:
    prompt = tokenizer.encode(question, add_special_tokens=False)
    response = tokenizer.encode(text, add_special_tokens=False)
    batch = build_batch([prompt], [response], [[1] * len(response)], tokenizer.pad_token_id)
    with torch.no_grad():
        return float((batch_logprobs(model, batch) * batch.mask).sum())


def weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo"])
def test_a_step_raises_the_right_answer_and_lowers_the_wrong_one(tiny_model_dir, task_file, tmp_path, monkeypatch, loss_type):  # noqa: F811
    scripted_rollouts(monkeypatch)
    trainer = RLTrainer(config(tiny_model_dir, task_file, tmp_path, steps=1, learning_rate=1e-3, loss_type=loss_type))
    questions = [f"What is {a} + {a}?" for a in range(1, 7)]
    before = [[answer_logprob(trainer.model, trainer.tokenizer, q, a) for a in answers(q)] for q in questions]
    [metrics] = trainer.train()
    assert metrics["reward"] == 0.5 and metrics["reward_std"] > 0
    after = [[answer_logprob(trainer.model, trainer.tokenizer, q, a) for a in answers(q)] for q in questions]
    rises = [a[0] - b[0] for a, b in zip(after, before)]
    falls = [a[1] - b[1] for a, b in zip(after, before)]
    assert sum(rises) > 0 > sum(falls), (rises, falls)


def test_tool_output_tokens_get_no_gradient(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    """Two runs whose responses differ only in the (masked) tool output end with the same weights."""
    moved = []
    for output in ("4", "5"):
        scripted_rollouts(monkeypatch, tool_output=output)
        trainer = RLTrainer(config(tiny_model_dir, task_file, tmp_path / output, steps=1, learning_rate=1e-3))
        start = weights(trainer.model)
        trainer.train()
        moved.append(weights(trainer.model) - start)
    assert moved[0].abs().sum() > 0
    assert torch.allclose(moved[0], moved[1], atol=1e-7)


@pytest.mark.parametrize("steps_per_generation, clips", [(1, False), (2, True)])
def test_the_clip_acts_only_after_the_first_step_on_a_batch(tiny_model_dir, task_file, tmp_path, monkeypatch,  # noqa: F811
                                                           steps_per_generation, clips):
    """On-policy (one step per batch of rollouts) the ratio is exactly 1 and the clip cannot bind; the second
    step on the same rollouts sees a moved policy, so a tight clip binds."""
    scripted_rollouts(monkeypatch)
    trainer = RLTrainer(config(tiny_model_dir, task_file, tmp_path, steps=2, steps_per_generation=steps_per_generation,
                               learning_rate=5e-2, clip_low=0.01, clip_high=0.01))
    first, second = trainer.train()
    assert first["clip_ratio/region_mean"] == 0
    assert (second["clip_ratio/region_mean"] > 0) == clips, second


class ScriptedModel(ModelBackend):
    """A model backend that writes one code cell, then answers: what our rollout function must turn into
    TRL's inputs with the cell's output masked out."""

    def __init__(self, tokenizer) -> None:
        self.name, self.tokenizer, self.seeds = "scripted", tokenizer, []

    def generate(self, requests, params):
        from harness.models.stopping import finished_generation

        self.seeds += [r.seed for r in requests]
        written = self.tokenizer.decode(requests[0].prompt_ids)
        text, finish = (("The answer is \\boxed{4}.", "eos") if "```output" in written
                        else ("```python\nprint(2 + 2)\n```\n```output", "stop"))
        ids = self.tokenizer.encode(text, add_special_tokens=False) + ([self.tokenizer.eos_token_id] if finish == "eos" else [])
        return [finished_generation(self.tokenizer, ids, finish, "```output" if finish == "stop" else None) for _ in requests]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_rollout_function_gives_trl_the_tool_output_masked(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    from types import SimpleNamespace

    from harness.eval.methods import load_method
    from harness.rl.rollouts import RolloutFunc
    from harness.sandbox import SandboxLimits, get_sandbox

    trainer = RLTrainer(config(tiny_model_dir, task_file, tmp_path, max_tokens=200))
    scripted = ScriptedModel(trainer.tokenizer)
    monkeypatch.setattr(RolloutFunc, "backend", lambda self, trl: scripted)
    process = SimpleNamespace(accelerator=SimpleNamespace(process_index=1), state=SimpleNamespace(global_step=3),
                              model=trainer.model)
    with get_sandbox("local", limits=SandboxLimits(timeout_s=2.0)) as sandbox:
        output = RolloutFunc(trainer.config, load_method("auto"), sandbox)(["What is 2 + 2?"] * 2, process)
    decode = trainer.tokenizer.decode
    for ids, mask in zip(output["completion_ids"], output["env_mask"], strict=True):
        assert len(ids) == len(mask)
        masked = [token for token, keep in zip(ids, mask) if not keep]
        assert masked and "4" in decode(masked) and "boxed" not in decode(masked)  # the cell's output, only it
        assert "```python" in decode([t for t, keep in zip(ids, mask) if keep])
    assert output["used_code"] == [True, True] and output["tool_calls"] == [1, 1] and output["logprobs"] is None
    assert "\\boxed{4}" in output["response_text"][0]
    assert len(set(scripted.seeds[:2])) == 2  # rows of a group sample with different seeds
