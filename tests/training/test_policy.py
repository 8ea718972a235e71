"""Precision and micro-batching shared by SFT and EM: fp32 master weights under bf16 autocast keep a
1e-6 update that pure bf16 loses; micro-batched losses and gradients equal the whole batch's; the
token budget holds."""

from __future__ import annotations

import pytest
import torch

from harness.training.distributed import micro_batches, rounds, share

from ..rl.test_mutations import RecordingOptimiser, current_logprobs, em_trainer, rollout
from ..rl.test_trainer import task_file, tiny_model_dir  # noqa: F401 - shared fixtures


# ---------------------------------------------------------------- precision
def test_master_weights_stay_fp32_while_the_forward_runs_in_bf16(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    trainer = em_trainer(tiny_model_dir, task_file, tmp_path, dtype="bfloat16", learning_rate=1e-6)
    seen = []
    layer = trainer.model.model.layers[0].mlp.down_proj
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    record = rollout(trainer)
    (tmp_path / "iter-1").mkdir()
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.mstep.run(0, {"training": [(record, 1.0)], "strategies": {"q": {"cot": 1.0, "code": 0.0}}})
    handle.remove()
    assert seen and set(seen) == {torch.bfloat16}  # the matmuls ran in bf16 (autocast) ...
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # ... on fp32 weights
    assert all(s.dtype == torch.float32 for state in trainer.mstep.optimizer.state.values() for s in state.values() if s.dim())
    weight = trainer.model.model.layers[0].mlp.down_proj.weight
    moved = (weight.detach() != before["model.layers.0.mlp.down_proj.weight"]).float().mean()
    assert moved > 0.9  # AdamW's first step moves every weight with a gradient by ~lr = 1e-6


def test_the_same_update_on_bf16_weights_is_lost():
    """What the test above guards against: AdamW on bf16 weights rounds a 1e-6 step away."""
    weight = torch.nn.Parameter(torch.full((64,), 0.25, dtype=torch.bfloat16))
    optimiser = torch.optim.AdamW([weight], lr=1e-6, weight_decay=0.0)
    weight.grad = torch.ones_like(weight)
    optimiser.step()
    assert torch.equal(weight.detach(), torch.full((64,), 0.25, dtype=torch.bfloat16))


# ---------------------------------------------------------------- micro-batching
def test_token_budget_micro_batches_respect_rows_and_tokens():
    lengths = [5, 30, 7, 7, 50, 2, 2, 2, 40]
    groups = micro_batches(lengths, max_rows=3, max_tokens=40)
    assert [i for group in groups for i in group] == list(range(len(lengths)))  # every row once, in order
    for group in groups:
        assert len(group) <= 3
        assert len(group) == 1 or len(group) * max(lengths[i] for i in group) <= 40  # a lone long row is allowed
    assert [4] in groups  # 50 tokens: alone, never cut
    assert micro_batches(lengths, max_rows=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert share(3, 0, 2) == [0, 2] and share(3, 1, 2) == [1]
    assert rounds([[[0], [2]], [[1]]], 1) == [[1], None]  # the lighter process pads with a dummy


def em_step_gradient(trainer, items, olds, strategies) -> tuple[float, torch.Tensor]:
    optimiser = RecordingOptimiser(trainer.model)
    loss = trainer.mstep.optimiser_step(items, olds, strategies, optimiser)
    return loss, optimiser.gradients


@pytest.mark.parametrize("split", [dict(micro_batch_size=1), dict(micro_batch_size=4, micro_batch_tokens=40),
                                   dict(micro_batch_size=2, gradient_checkpointing=True)])
def test_micro_batched_m_step_and_decision_ce_equal_the_whole_batch(tiny_model_dir, task_file, tmp_path, split):  # noqa: F811
    settings = dict(kl_weight=0.5, decision_weight=1.0, batch_size=4)
    whole = em_trainer(tiny_model_dir, task_file, tmp_path / "whole", micro_batch_size=8, **settings)
    parts = em_trainer(tiny_model_dir, task_file, tmp_path / "parts", **split, **settings)
    texts = ["We compute 2 + 2 = 4. The answer is 4.", "The answer is 5.", "It is 4, since 2 + 2 = 4 and so on and on.", "4"]
    items, olds = [], []
    for number, text in enumerate(texts):
        record = dict(rollout(whole, text, correct=number % 2 == 0), doc_id=f"q{number % 3}")
        record["prompt_ids"] = record["prompt_ids"][: 3 + number]  # prompts of different lengths: padding in play
        items.append((record, 1.0 if number % 2 == 0 else -0.5))
        olds.append(current_logprobs(whole, record) - 0.05 * number)
    strategies = {f"q{i}": {"cot": i / 2, "code": 1 - i / 2} for i in range(3)}
    loss_whole, grad_whole = em_step_gradient(whole, items, olds, strategies)
    loss_parts, grad_parts = em_step_gradient(parts, items, olds, strategies)
    assert loss_parts == pytest.approx(loss_whole, rel=1e-5)
    assert torch.allclose(grad_parts, grad_whole, atol=1e-6, rtol=1e-4)
    assert grad_whole.abs().sum() > 0


def test_prefix_log_probs_from_prefix_positions_equal_the_full_rows(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    from harness.training.batch import batch_logprobs, build_batch

    trainer = em_trainer(tiny_model_dir, task_file, tmp_path, micro_batch_size=2)
    prompts = {"a": trainer.backend.encode("What is 2 + 2?"), "b": trainer.backend.encode("Solve 3x = 12 for x, please.")}
    fast = trainer.mstep.prefix_logprobs(prompts, grad=False)
    for query, prompt in prompts.items():
        for index, decision in enumerate(("cot", "code")):
            prefix = trainer.prefix_ids[decision]
            batch = build_batch([prompt], [prefix], [[1] * len(prefix)], trainer.backend.pad_token_id)
            with torch.no_grad():
                full = float((batch_logprobs(trainer.model, batch) * batch.mask).sum())
            assert fast[query][index] == pytest.approx(full, abs=1e-4)


def test_micro_batched_sft_step_equals_the_whole_batch(tmp_path):
    from harness.testbed.demos import demonstration_rows
    from harness.testbed.model_init import write_tiny_model
    from harness.training.policy import load_policy, make_accelerator
    from harness.training.sequences import encode_example
    from harness.training.sft import SFTConfig, sft_step

    write_tiny_model(tmp_path / "init")
    gradients = {}
    for name, split in {"whole": {}, "rows": {"micro_batch_size": 1}, "tokens": {"micro_batch_tokens": 300}}.items():
        model, tokenizer = load_policy(tmp_path / "init")
        examples = [encode_example(tokenizer, row) for row in demonstration_rows(5, seed=3, code_ratio=0.5, forced_share=0.5)]
        optimiser = RecordingOptimiser(model)
        config = SFTConfig(model="", data="", output_dir="", max_length=120, device="cpu", **split)
        loss, _ = sft_step(model, optimiser, make_accelerator("cpu", "auto"), examples, tokenizer.pad_token_id, config)
        gradients[name] = (loss, optimiser.gradients)
    for name in ("rows", "tokens"):
        assert gradients[name][0] == pytest.approx(gradients["whole"][0], rel=1e-5)
        assert torch.allclose(gradients[name][1], gradients["whole"][1], atol=1e-6, rtol=1e-4), name


# ---------------------------------------------------------------- the E-step under FSDP
def test_a_sharded_run_generates_on_a_copy_refreshed_from_the_trained_weights(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    """Under FSDP (stood in for by ``sharded`` in one process; the 2-process FSDP2 tests shard for real) the E-step's backend
    holds its own copy, loaded from the gathered weights before each E-step, never the sharded module."""
    import harness.training.policy

    monkeypatch.setattr(harness.training.policy, "sharded", lambda accelerator: True)
    trainer = em_trainer(tiny_model_dir, task_file, tmp_path)
    trained = trainer.accelerator.unwrap_model(trainer.model)
    assert trainer.backend.model is not trained
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.01)
    trainer.generation_copy.refresh(trainer.accelerator, trainer.model)
    copy = trainer.backend.model.state_dict()
    for name, tensor in trained.state_dict().items():
        assert torch.equal(copy[name], tensor), name


def test_a_deepspeed_launch_is_refused_before_anything_loads(monkeypatch, tmp_path):
    """FSDP2 is the sharded path: a DeepSpeed launch config gets one clear error from every trainer, before a
    model is read (the model folder here does not exist, which would be a different error)."""
    from harness.rl.config import RLConfig
    from harness.rl.trainer import RLTrainer
    from harness.training.policy import make_accelerator

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    for build in (lambda: make_accelerator("cpu", "float32"),
                  lambda: RLTrainer(RLConfig(model=str(tmp_path / "none"), task="gsm8k-train", output_dir=str(tmp_path / "rl")))):
        with pytest.raises(ValueError, match="DeepSpeed is not supported: launch with configs/accelerate-fsdp.yaml"):
            build()
