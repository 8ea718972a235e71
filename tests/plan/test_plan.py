"""`harness plan`: its arithmetic against a hand calculation on a small shape, and its refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.em.config import EMConfig
from harness.model_shape import SHAPES, ModelShape
from harness.plan import GIB, PEAK_FLOPS, Hardware, Workload, generation_batch, make_plan
from harness.rl.config import RLConfig
from harness.training.layout import RunLayout, run_layout

# 2 layers, hidden 8, MLP 16, 2 heads of dim 4, 1 KV head, vocabulary 10, untied embeddings. By hand:
# attention 2·8·8 (q, o) + 8 (q bias) + 2·(8·4 + 4) (k, v with bias) = 208; MLP 3·8·16 = 384; norms 16
# -> 608 per layer; 2·608 + 2·10·8 (embeddings, head) + 8 (final norm) = 1384 parameters.
SMALL = ModelShape("small", layers=2, hidden=8, intermediate=16, heads=2, kv_heads=1, vocab=10, tied_embeddings=False)
WORK = Workload(rollouts=10, response_tokens=100, prompt_tokens=20, train_sequences=4, micro_batch_size=2,
                gradient_checkpointing=True)


def test_parameter_count_by_hand():
    assert SMALL.layer_params == 608
    assert SMALL.params == 1384


def layout(strategy="fsdp", processes=2, rollout="hf", trainer="train-em", share=0.0, weights="float32",
           engine="float32") -> RunLayout:
    return RunLayout(trainer, strategy, processes, rollout, compute_dtype="bfloat16", weight_dtype=weights,
                     vllm_memory_share=share, vllm_tensor_parallel=1, vllm_dtype=engine,
                     vllm_held_in_update=trainer == "train-rl")


def test_memory_and_time_by_hand():
    hw = Hardware(gpu_memory_gib=80, concurrent_sequences=64, accelerator="h100")
    plan = make_plan(SMALL, WORK, hw, layout(), rollout_tokens_per_s=50.0, mfu=0.4, response_fill=0.5)
    tokens = 2 * 120  # micro-batch x (prompt + response budget)
    expected_bytes = {
        "weights (float32)": (4 * 1384 / 2, "held"),
        "gradients (float32)": (4 * 1384 / 2, "held"),
        "optimiser (AdamW, float32)": (8 * 1384 / 2, "held"),
        "activations (micro-batch)": (2 * 2 * tokens * 8 + tokens * (16 * 8 + 6 * 16), "update"),
        "logits (micro-batch)": (6 * tokens * 10, "update"),
        "gathered layers": (2 * 2 * 608, "update"),
        "FSDP root unit (embeddings, head)": (2 * (2 * 10 * 8 + 8), "update"),  # embeddings + lm_head + final norm, bf16
        "KV cache (HF generation)": ((2 * 2 * 1 * 4 * 2) * 64 * 120, "rollouts"),
        "generation copy (bfloat16)": (2 * 1384, "held"),
        "E-step refresh (gathered state)": (4 * 1384, "rollouts"),  # the fp32 masters gathered whole
    }
    assert plan.memory == {k: (pytest.approx(v / GIB), phase) for k, (v, phase) in expected_bytes.items()}
    held = 16 * 1384 / 2 + 2 * 1384
    rollouts = 32 * 64 * 120 + 4 * 1384
    update = 2 * 2 * 240 * 8 + 240 * 224 + 6 * 240 * 10 + 4 * 608 + 336
    assert rollouts > update
    assert plan.peak_gib == pytest.approx((held + rollouts) / GIB)  # the phases do not add: held + the larger one
    # 10 rollouts x 50 tokens (half the budget) at 50 tokens/s on each of 2 GPUs; 4 sequences x 70 tokens trained
    # at (6 + 2 recompute + 2 for π_old) x 1384 FLOPs per token.
    assert plan.seconds["rollouts"] == pytest.approx(5.0)
    assert plan.seconds["update"] == pytest.approx(4 * 70 * 10 * 1384 / (2 * PEAK_FLOPS["h100"] * 0.4))


def test_the_fsdp_root_unit_counts_a_tied_head_once():
    tied = ModelShape("tied", layers=2, hidden=8, intermediate=16, heads=2, kv_heads=1, vocab=10, tied_embeddings=True)
    plan = make_plan(tied, WORK, Hardware(80, 64), layout(), rollout_tokens_per_s=1.0)
    assert plan.memory_gib["FSDP root unit (embeddings, head)"] == pytest.approx(2 * (10 * 8 + 8) / GIB)


def test_vllm_takes_its_configured_share_of_the_gpu():
    hw = Hardware(gpu_memory_gib=1 / 1024, concurrent_sequences=64)  # 1 MiB: the small model's engine fits with room to count
    em = make_plan(SMALL, WORK, hw, layout("ddp", rollout="vllm-colocate", share=0.5), rollout_tokens_per_s=1.0)
    assert em.memory["vLLM (0.5 of the GPU)"] == (pytest.approx(0.5 / 1024), "rollouts")  # released before the M-step
    # The engine holds the fp32 weights (4·1384 bytes); the rest of 512 KiB is KV cache at 2·2·1·4·4 bytes x 120 tokens
    # per sequence: (524288 - 5536) // 7680 = 67 sequences.
    assert any("KV cache for about 67 sequences" in line for line in em.assumptions)
    rl = make_plan(SMALL, WORK, hw, layout("ddp", rollout="vllm-colocate", trainer="train-rl", share=0.3), rollout_tokens_per_s=1.0)
    assert rl.memory["vLLM (0.3 of the GPU)"] == (pytest.approx(0.3 / 1024), "held")  # TRL keeps its engine
    server = make_plan(SMALL, WORK, hw, layout("ddp", rollout="vllm-server", trainer="train-rl"), rollout_tokens_per_s=1.0)
    assert not [name for name in server.memory if "vLLM" in name or "KV" in name]


def test_a_share_too_small_for_the_engine_weights_is_refused():
    # qwen2.5-7b: 7.62e9 parameters, 28.4 GiB in fp32 (train-em's vllm_dtype float32), 14.2 GiB in bf16.
    seven_b, hw = SHAPES["qwen2.5-7b"], Hardware(gpu_memory_gib=80, concurrent_sequences=64)
    with pytest.raises(ValueError, match=r"vLLM's share \(0.3 x 80 GiB = 24.0 GiB\) cannot hold its 28.4 GiB of weights"):
        make_plan(seven_b, WORK, hw, layout("ddp", rollout="vllm-colocate", share=0.3), rollout_tokens_per_s=1.0)
    make_plan(seven_b, WORK, hw, layout("ddp", rollout="vllm-colocate", share=0.3, engine="bfloat16"), rollout_tokens_per_s=1.0)


def test_the_layout_reads_the_engine_from_the_trainer_config():
    em = run_layout(EMConfig(rollout_backend="vllm", vllm_gpu_memory_utilization=0.6, vllm_dtype="float32"), "fsdp", 8, gpu=True)
    assert (em.rollout, em.vllm_memory_share, em.vllm_dtype, em.vllm_held_in_update) == ("vllm-colocate", 0.6, "float32", False)
    rl = run_layout(RLConfig(vllm_mode="colocate"), "fsdp", 8, gpu=True)
    assert (rl.rollout, rl.vllm_memory_share, rl.vllm_dtype, rl.vllm_held_in_update) == ("vllm-colocate", 0.3, "bfloat16", True)
    sleeping = run_layout(RLConfig(vllm_mode="colocate", vllm_args={"vllm_gpu_memory_utilization": 0.45,
                                                                    "vllm_enable_sleep_mode": True}), "ddp", 8, gpu=True)
    assert (sleeping.vllm_memory_share, sleeping.vllm_held_in_update) == (0.45, False)
    server = run_layout(RLConfig(vllm_mode="server"), "ddp", 8, gpu=True)
    assert (server.rollout, server.vllm_memory_share) == ("vllm-server", 0.0)
    em_server = run_layout(EMConfig(rollout_backend="vllm-server", vllm_gpu_memory_utilization=0.6), "fsdp", 8, gpu=True)
    assert (em_server.rollout, em_server.vllm_memory_share, em_server.vllm_tensor_parallel) == ("vllm-server", 0.0, 1)
    plan = make_plan(SMALL, WORK, Hardware(80, 64), em_server, rollout_tokens_per_s=1.0)
    assert not [name for name in plan.memory if "vLLM" in name or "KV" in name or "generation copy" in name]
    assert any("server decodes on 8 GPUs of its own" in line for line in plan.assumptions)


def test_weights_pushed_into_vllm_under_fsdp_are_gathered_one_tensor_at_a_time():
    plan = make_plan(SMALL, WORK, Hardware(80, 64), layout(rollout="vllm-colocate", trainer="train-rl", share=0.3),
                     rollout_tokens_per_s=1.0)
    # the largest tensor: an MLP matrix, 8 x 16, larger than the 10 x 8 embeddings; fp32
    assert plan.memory["weight sync (one gathered tensor)"] == (pytest.approx(4 * 128 / GIB), "rollouts")
    assert "generation copy (bfloat16)" not in plan.memory
    on_policy = make_plan(SMALL, WORK, Hardware(80, 64), layout(trainer="train-rl"), rollout_tokens_per_s=1.0)
    assert on_policy.memory["generation copy (bfloat16)"] == (pytest.approx(2 * 1384 / GIB), "held")  # as train-em's E-step
    assert on_policy.memory["E-step refresh (gathered state)"] == (pytest.approx(4 * 1384 / GIB), "rollouts")


def test_ddp_replicates_states_and_no_checkpointing_keeps_every_layer():
    plain = Workload(**{**WORK.__dict__, "gradient_checkpointing": False})
    plan = make_plan(SMALL, plain, Hardware(80, 64), layout("ddp", 4), rollout_tokens_per_s=1.0)
    assert plan.memory_gib["optimiser (AdamW, float32)"] == pytest.approx(8 * 1384 / GIB)
    assert not {"gathered layers", "FSDP root unit (embeddings, head)", "E-step refresh (gathered state)"} & set(plan.memory)
    assert plan.memory_gib["activations (micro-batch)"] == pytest.approx(2 * 240 * (16 * 8 + 6 * 16) / GIB)


def test_bf16_weights_halve_the_training_states():
    plan = make_plan(SMALL, WORK, Hardware(80, 64), layout("ddp", trainer="train-rl", weights="bfloat16"), rollout_tokens_per_s=1.0)
    assert plan.memory_gib["optimiser (AdamW, bfloat16)"] == pytest.approx(4 * 1384 / GIB)


def test_a_token_budget_caps_the_micro_batch_but_never_below_one_row():
    hw = Hardware(gpu_memory_gib=80, concurrent_sequences=64)
    capped = make_plan(SMALL, Workload(**{**WORK.__dict__, "micro_batch_tokens": 150}), hw, layout(), rollout_tokens_per_s=1.0)
    assert capped.memory_gib["logits (micro-batch)"] == pytest.approx(6 * 150 * 10 / GIB)  # 150 of 2 x 120 tokens
    one_row = make_plan(SMALL, Workload(**{**WORK.__dict__, "micro_batch_tokens": 50}), hw, layout(), rollout_tokens_per_s=1.0)
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
    assert "peak (held + the larger phase)" in fits.output and "time per EM iteration" in fits.output
    too_small = runner.invoke(app, ["plan", "--preset", "qwen2.5-7b", "--gpus", "1", "--gpu-memory", "80"])
    assert too_small.exit_code == 1
    assert "error: the plan needs" in too_small.output and "Traceback" not in too_small.output


def test_cli_resolves_the_config_as_the_trainer_does(tmp_path):
    """Preset, then the --config file, then --set: the vLLM share the plan prints is the one they leave."""
    (tmp_path / "em.yaml").write_text("rollout_backend: vllm\nvllm_gpu_memory_utilization: 0.7\n")
    args = ["plan", "--preset", "paper-7b", "--strategy", "ddp", "--gpu-memory", "1000", "--config", str(tmp_path / "em.yaml")]
    from_file = CliRunner().invoke(app, args)
    assert from_file.exit_code == 0, from_file.output
    assert "vLLM (0.7 of the GPU)" in from_file.output and "700.00" in from_file.output
    from_flag = CliRunner().invoke(app, [*args, "--set", "vllm_gpu_memory_utilization=0.4"])
    assert "vLLM (0.4 of the GPU)" in from_flag.output


def test_cli_plans_a_rehearsal_as_the_trainer_runs_it(tmp_path, monkeypatch):
    """HARNESS_OVERRIDES comes last for the trainer, after its flags: so for the plan, after --set."""
    (tmp_path / "rehearsal.yaml").write_text("train-em: {rollout_backend: hf}\n")
    monkeypatch.setenv("HARNESS_OVERRIDES", str(tmp_path / "rehearsal.yaml"))
    result = CliRunner().invoke(app, ["plan", "--preset", "paper-7b", "--set", "rollout_backend=vllm", "--gpu-memory", "1000"])
    assert result.exit_code == 0, result.output
    assert ", rollouts hf," in result.output.splitlines()[0]


def test_the_hf_path_generates_the_trainers_batch_at_once():
    from harness.em.config import EMConfig
    from harness.em.trainer import ESTEP_ROUND
    from harness.rl.config import RLConfig

    assert generation_batch(EMConfig.preset("paper-7b"), 8) == ESTEP_ROUND  # an E-step round per process
    # 8 prompts x 8 rollouts over 2 processes, two optimiser steps per generation: 64 rows per process at once
    assert generation_batch(RLConfig(prompts_per_step=8, group_size=8, micro_batch_size=4, steps_per_generation=2), 2) == 64


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--config", "em.yaml"], "no preset says which trainer: name the trainer with --trainer"),
    (["--preset", "tiny"], "preset 'tiny' is both train-em's and train-rl's: name the trainer with --trainer"),
    (["--preset", "paper-7b", "--shape", "/nonexistent"], "unknown shape"),
    (["--preset", "paper-7b", "--strategy", "zero9"], "unknown strategy"),
    (["--preset", "paper-7b", "--set", "micro_batch_size=0"], "--micro-batch-size: micro_batch_size: must be at least 1"),
    (["--preset", "paper-7b", "--set", "no_such_field=1"], "--set: train-em has no field 'no_such_field'"),
    (["--trainer", "train-rl", "--preset", "paper-7b"], "unknown preset 'paper-7b'; choose one of"),
])
def test_cli_bad_input_is_one_error_line(args, message):
    result = CliRunner().invoke(app, ["plan", *args])
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: {message}") and "Traceback" not in result.output
