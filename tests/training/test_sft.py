"""The SFT trainer: it learns, it touches every parameter, tool tokens give no gradient, resume is exact."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.testbed.demos import demonstration_rows
from harness.training.checkpoint import checkpoint_dir, list_checkpoints
from harness.training.run_folder import PROVENANCE_FILE
from harness.training.schedule import lr_factor
from harness.training.sequences import collate, encode_example, token_loss
from harness.training.sft import SFTConfig, train_sft


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from harness.testbed.model_init import write_tiny_model

    root = tmp_path_factory.mktemp("sft")
    write_tiny_model(root / "init")
    rows = demonstration_rows(8, seed=1, code_ratio=0.5, forced_share=0.5)
    (root / "demos.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def load(path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def batch_loss(model, tokenizer, rows):
    import torch

    batch = collate([encode_example(tokenizer, row) for row in rows], tokenizer.pad_token_id)
    with torch.no_grad():
        return token_loss(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"]).item()


def config(tiny, output, **changes):
    base = {"model": str(tiny / "init"), "data": str(tiny / "demos.jsonl"), "output_dir": str(output), "steps": 30,
            "batch_size": 4, "learning_rate": 3e-3, "warmup_steps": 3, "save_every": 15, "log_every": 10, "threads": 1}
    return SFTConfig(**(base | changes))


def test_a_handful_of_examples_lowers_the_loss_and_changes_every_parameter(tiny, tmp_path):
    rows = [json.loads(line) for line in (tiny / "demos.jsonl").read_text().splitlines()]
    before, tokenizer = load(tiny / "init")
    train_sft(config(tiny, tmp_path / "run"), log=lambda _: None)
    after, _ = load(tmp_path / "run")
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logged] == [10, 20, 30]  # log_every 10
    assert all(set(line) == {"step", "epoch", "loss", "grad_norm", "learning_rate", "step_time"} for line in logged)  # Trainer's names
    assert logged[-1]["epoch"] == 30 * 4 / len(rows) and logged[-1]["loss"] < logged[0]["loss"]
    assert logged[-1]["learning_rate"] == pytest.approx(3e-3 * lr_factor(30, 30, 3, "cosine", 0.1))
    assert batch_loss(after, tokenizer, rows) < 0.5 * batch_loss(before, tokenizer, rows)
    old = dict(before.named_parameters())
    unchanged = [name for name, p in after.named_parameters() if p.requires_grad and p.detach().equal(old[name].detach())]
    assert unchanged == []


def test_masked_tool_tokens_get_zero_gradient(tiny):
    model, tokenizer = load(tiny / "init")
    row = next(r for r in demonstration_rows(40, seed=2, code_ratio=1.0, forced_share=0.0) if r["style"] == "code")
    example = encode_example(tokenizer, row)
    batch = collate([example], tokenizer.pad_token_id)
    logits = model(input_ids=batch["input_ids"]).logits
    logits.retain_grad()
    token_loss(logits, batch["labels"]).backward()
    grad_norms = logits.grad[0].norm(dim=-1).tolist()
    # The logits at position t predict token t+1: zero gradient exactly where that token is tool output or prompt.
    for position, learned in enumerate(example.loss_mask[1:]):
        assert (grad_norms[position] > 0) == bool(learned), position
    assert 0 in example.loss_mask[example.loss_mask.index(1):]  # the row really has tool tokens inside the response


def test_resume_continues_exactly_as_an_uninterrupted_run(tiny, tmp_path):
    whole = tmp_path / "whole"
    train_sft(config(tiny, whole), log=lambda _: None)
    assert [p.name for p in list_checkpoints(whole)] == ["step-000015", "step-000030"]
    interrupted = tmp_path / "interrupted"
    shutil.copytree(checkpoint_dir(whole, 15), checkpoint_dir(interrupted, 15))  # as if killed after step 15
    shutil.copy(whole / PROVENANCE_FILE, interrupted / PROVENANCE_FILE)
    messages = []
    summary = train_sft(config(tiny, interrupted), log=messages.append, resume=True)
    assert summary["resumed_from"] == 15 and any("resuming" in m for m in messages)
    a, _ = load(whole)
    b, _ = load(interrupted)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert p.detach().equal(q.detach()), name


def test_learning_rate_warms_up_then_decays_to_the_floor():
    assert lr_factor(0, 100, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(55, 100, 10, "cosine", 0.1) == pytest.approx(0.55)


def test_the_7b_preset_is_a_real_models_warm_up_not_the_testbeds():
    """The testbed's lr 3e-3 and 256 tokens (the defaults' too) would wreck a 7B model and cut its solutions;
    tests/test_paper_fidelity.py holds each value against the paper."""
    real = SFTConfig.preset("qwen2.5-7b")
    for testbed in (SFTConfig.preset("tiny"), SFTConfig()):
        assert real.learning_rate <= testbed.learning_rate / 100
        assert real.max_length >= 2048 > testbed.max_length
    assert real.dtype == "bfloat16" and real.gradient_checkpointing and real.micro_batch_size == 2
