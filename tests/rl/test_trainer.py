"""The RL trainer end to end on a tiny random model: it runs, logs TRL's metric names, updates the very
weights the rollout backend generates with, and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from harness.rl.config import PRESETS, RLConfig, preset
from harness.rl.trainer import RLTrainer

from ..models.tiny_models import build_model, build_tokenizer


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-policy")
    tokenizer = build_tokenizer()
    model = build_model("qwen2", tokenizer)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("task") / "sums.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {a} + {a}?", "answer": 2 * a}) + "\n" for a in range(1, 7)))
    return path


def config(model_dir, task_file, out, **overrides) -> RLConfig:
    values = dict(model=str(model_dir), task=str(task_file), method="auto", steps=2, prompts_per_step=2, group_size=2,
                  max_tokens=12, max_tool_calls=1, learning_rate=1e-2, micro_batch_size=2, save_every=1,
                  output_dir=str(out), device="cpu", sandbox_timeout=2.0)
    return RLConfig.from_dict({**values, **overrides})


def weights(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_a_step_logs_trl_metrics_and_moves_the_weights_the_backend_uses(tiny_model_dir, task_file, tmp_path):
    trainer = RLTrainer(config(tiny_model_dir, task_file, tmp_path, steps=1, format_reward=0.5))
    assert trainer.backend.model is trainer.model
    before = weights(trainer.backend.model)
    [metrics] = trainer.train()
    for name in ("reward", "reward_std", "completions/mean_length", "tools/call_frequency", "tools/failure_frequency",
                 "clip_ratio/region_mean", "loss", "learning_rate", "code_rate", "rewards/correct/mean"):
        assert name in metrics
    after = weights(trainer.backend.model)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == [metrics] and logged[0]["step"] == 1
    assert (tmp_path / "checkpoints" / "step-000001" / "config.json").is_file()
    # The trained model in OUT itself, in bf16: what `harness eval --model hf:OUT` evaluates.
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "model.safetensors")
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
    assert all(torch.equal(tensor, after[name].to(torch.bfloat16)) for name, tensor in saved.items() if name in after)
    assert saved.keys() <= after.keys() and len(saved) >= len(after) - 1  # a tied lm_head is written once


def test_resume_gives_the_same_next_step_as_an_uninterrupted_run(tiny_model_dir, task_file, tmp_path):
    straight = RLTrainer(config(tiny_model_dir, task_file, tmp_path / "straight"))
    straight_history = straight.train()
    first = RLTrainer(config(tiny_model_dir, task_file, tmp_path / "resumed", steps=1))
    first.train()
    del first
    resumed = RLTrainer(config(tiny_model_dir, task_file, tmp_path / "resumed"))
    resumed_history = resumed.train(resume=True)
    assert len(resumed_history) == 1 and resumed_history[0]["step"] == 2
    assert resumed_history[0]["reward"] == straight_history[1]["reward"]
    assert resumed_history[0]["loss"] == pytest.approx(straight_history[1]["loss"], rel=1e-5)
    for name, value in weights(straight.backend.model).items():
        assert torch.allclose(value, weights(resumed.backend.model)[name], atol=1e-6), name


def test_config_yaml_presets_and_errors(tmp_path):
    path = tmp_path / "rl.yaml"
    path.write_text("steps: 3\ngroup_size: 4\nclip_high: 0.3\n")
    loaded = RLConfig.from_yaml(path)
    assert (loaded.steps, loaded.group_size, loaded.clip_high) == (3, 4, 0.3)
    (tmp_path / "bad.yaml").write_text("stepz: 3\n")
    with pytest.raises(ValueError, match="unknown config keys: stepz"):
        RLConfig.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="loss_type"):
        RLConfig(loss_type="mean")
    with pytest.raises(ValueError, match="grpo_args: learning_rate set by RLConfig"):
        RLConfig(grpo_args={"learning_rate": 1.0})
    with pytest.raises(ValueError, match="micro_batch_size: 3 does not divide the 32"):
        RLConfig(prompts_per_step=8, group_size=8, micro_batch_size=3).batch_rows(2)
    assert set(PRESETS) == {"tiny", "qwen2.5-7b"} and preset("qwen2.5-7b").kl_weight == 0.0


def test_rlconfig_maps_onto_grpoconfig():
    from harness.rl.trainer import grpo_arguments
    from harness.training.layout import run_layout

    config = RLConfig(prompts_per_step=8, group_size=4, micro_batch_size=2, steps_per_generation=2, updates_per_batch=3,
                      loss_type="grpo", clip_low=0.1, clip_high=0.3, advantage_scale="none", kl_weight=0.05,
                      gradient_checkpointing=True, device="cpu", grpo_args={"mask_truncated_completions": True})
    one, two = (grpo_arguments(config, run_layout(config, strategy, n, gpu=False)) for strategy, n in (("single", 1), ("ddp", 2)))
    assert (one.per_device_train_batch_size, one.gradient_accumulation_steps, one.steps_per_generation) == (2, 16, 32)
    assert (two.per_device_train_batch_size, two.gradient_accumulation_steps, two.steps_per_generation) == (2, 8, 16)
    assert (one.num_generations, one.num_iterations, one.loss_type, one.epsilon, one.epsilon_high) == (4, 3, "grpo", 0.1, 0.3)
    assert (one.scale_rewards, one.beta, one.gradient_checkpointing, one.mask_truncated_completions) == ("none", 0.05, True, True)
    assert not one.bf16 and not one.use_vllm  # float32 on the CPU; the policy generates
    on_gpu = {dtype: grpo_arguments(config, run_layout(config.updated(dtype=dtype), "single", 1, gpu=True)).bf16
              for dtype in ("auto", "bfloat16", "float32")}
    assert on_gpu == {"auto": True, "bfloat16": False, "float32": False}  # bfloat16 weights need no autocast


def test_an_over_long_prompt_in_the_rl_rollouts_is_refused_as_eval_refuses_it(tiny_model_dir, task_file, tmp_path, monkeypatch):
    """A prompt that fills the model's context is not generated for (eval's guard): TRL still gets its row, one
    padding token of prompt and of response with env_mask 0, so nothing is learned from it, and it earns no
    reward; the other rows are rolled out as usual."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from harness.eval.methods import load_method
    from harness.rl.rollouts import Reward, RolloutFunc

    trainer = RLTrainer(config(tiny_model_dir, task_file, tmp_path))
    backend = trainer.backend
    monkeypatch.setattr(RolloutFunc, "backend", lambda self, _: nullcontext(backend))
    rollouts = RolloutFunc(trainer.config, load_method("cot"), sandbox=None)
    fake_trl = SimpleNamespace(accelerator=SimpleNamespace(process_index=0), state=SimpleNamespace(global_step=0), model=trainer.model)
    questions = ["What is 1 + 1?", "What is 2 + 2? " + "Think hard. " * 4000]
    assert backend.context_length < 4000
    out = rollouts(questions, fake_trl)
    pad = backend.pad_token_id
    assert out["prompt_ids"][1] == [pad] and out["completion_ids"][1] == [pad] and out["env_mask"][1] == [0]
    assert out["response_text"][1] == "" and not out["used_code"][1] and out["tool_calls"][1] == 0
    assert len(out["prompt_ids"][0]) > 1 and sum(out["env_mask"][0]) == len(out["completion_ids"][0]) > 0
    rewards = Reward(trainer.config, "math500")(questions, out["response_text"], [json.dumps(2), json.dumps(4)],
                                                out["response_text"], out["used_code"], out["tool_calls"], out["tool_failures"])
    assert rewards[1] == 0.0
