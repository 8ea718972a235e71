"""`harness plan`: its arithmetic against a hand calculation on a small shape, and its refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.plan import GIB, PEAK_FLOPS, Hardware, ModelShape, Workload, make_plan

# 2 layers, hidden 8, MLP 16, 2 heads of dim 4, 1 KV head, vocabulary 10, untied embeddings. By hand:
# attention 2·8·8 (q, o) + 8 (q bias) + 2·(8·4 + 4) (k, v with bias) = 208; MLP 3·8·16 = 384; norms 16
# -> 608 per layer; 2·608 + 2·10·8 (embeddings, head) + 8 (final norm) = 1384 parameters.
SMALL = ModelShape("small", layers=2, hidden=8, intermediate=16, heads=2, kv_heads=1, vocab=10, tied_embeddings=False)
WORK = Workload(rollouts=10, response_tokens=100, prompt_tokens=20, train_sequences=4, micro_batch_size=2,
                gradient_checkpointing=True)


def test_parameter_count_by_hand():
    assert SMALL.layer_params == 608
    assert SMALL.params == 1384


def test_memory_and_time_by_hand():
    hw = Hardware(gpus=2, gpu_memory_gib=80, accelerator="h100", strategy="fsdp", concurrent_sequences=256)
    plan = make_plan(SMALL, WORK, hw, rollout_tokens_per_s=50.0, mfu=0.4, response_fill=0.5)
    tokens = 2 * 120  # micro-batch x (prompt + response budget)
    expected_bytes = {
        "weights (fp32 master)": 4 * 1384 / 2,
        "gradients (fp32)": 4 * 1384 / 2,
        "optimiser (AdamW, fp32)": 8 * 1384 / 2,
        "gathered layers (bf16)": 4 * 608,
        "activations (micro-batch)": 2 * 2 * tokens * 8 + tokens * (16 * 8 + 6 * 16),
        "logits (micro-batch)": 6 * tokens * 10,
        "vLLM weights (bf16)": 2 * 1384,
        "vLLM KV cache": (2 * 2 * 1 * 4 * 2) * 256 * 120,
    }
    assert plan.memory_gib == pytest.approx({k: v / GIB for k, v in expected_bytes.items()})
    # 10 rollouts x 50 tokens (half the budget) at 50 tokens/s on each of 2 GPUs; 4 sequences x 70 tokens trained
    # at (6 + 2 recompute + 2 for π_old) x 1384 FLOPs per token.
    assert plan.seconds["rollouts"] == pytest.approx(5.0)
    assert plan.seconds["update"] == pytest.approx(4 * 70 * 10 * 1384 / (2 * PEAK_FLOPS["h100"] * 0.4))


def test_ddp_replicates_states_and_no_checkpointing_keeps_every_layer():
    plain = Workload(**{**WORK.__dict__, "gradient_checkpointing": False})
    plan = make_plan(SMALL, plain, Hardware(gpus=4, gpu_memory_gib=80, strategy="ddp"), rollout_tokens_per_s=1.0)
    assert plan.memory_gib["optimiser (AdamW, fp32)"] == pytest.approx(8 * 1384 / GIB)
    assert plan.memory_gib["gathered layers (bf16)"] == 0
    assert plan.memory_gib["activations (micro-batch)"] == pytest.approx(2 * 240 * (16 * 8 + 6 * 16) / GIB)


def test_a_token_budget_caps_the_micro_batch_but_never_below_one_row():
    hw = Hardware(gpus=2, gpu_memory_gib=80)
    capped = make_plan(SMALL, Workload(**{**WORK.__dict__, "micro_batch_tokens": 150}), hw, rollout_tokens_per_s=1.0)
    assert capped.memory_gib["logits (micro-batch)"] == pytest.approx(6 * 150 * 10 / GIB)  # 150 of 2 x 120 tokens
    one_row = make_plan(SMALL, Workload(**{**WORK.__dict__, "micro_batch_tokens": 50}), hw, rollout_tokens_per_s=1.0)
    assert one_row.memory_gib["logits (micro-batch)"] == pytest.approx(6 * 120 * 10 / GIB)  # a 120-token row is never cut


def test_shape_from_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "num_hidden_layers": 2, "hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2,
        "num_key_value_heads": 1, "vocab_size": 10, "tie_word_embeddings": False}))
    assert ModelShape.from_config(tmp_path / "config.json").params == 1384


def test_cli_prints_a_plan_that_fits_and_refuses_one_that_does_not():
    runner = CliRunner()
    fits = runner.invoke(app, ["plan", "--preset", "paper-7b", "--gpus", "8", "--gpu-memory", "141"])
    assert fits.exit_code == 0, fits.output
    assert "peak (colocated)" in fits.output and "time per EM iteration" in fits.output
    too_small = runner.invoke(app, ["plan", "--preset", "qwen2.5-7b", "--gpus", "1", "--gpu-memory", "80"])
    assert too_small.exit_code == 1
    assert "error: the plan needs" in too_small.output and "Traceback" not in too_small.output


@pytest.mark.parametrize("args", [["--preset", "nope"], ["--preset", "paper-7b", "--shape", "/nonexistent"],
                                  ["--preset", "paper-7b", "--strategy", "zero9"]])
def test_cli_bad_input_is_one_error_line(args):
    result = CliRunner().invoke(app, ["plan", *args])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and "Traceback" not in result.output
