"""`train-rl`'s configuration: one dataclass, loadable from YAML, with presets.

Every field has help text (``help_text()`` lists it); a YAML file holds any subset of the fields,
and unknown keys are an error rather than silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.training.config import TrainerConfig, option
from harness.training.schedule import SCHEDULES


@dataclass
class RLConfig(TrainerConfig):
    COMMAND: ClassVar[str] = "train-rl"

    model: str = option("", "policy to start from: a Hugging Face model folder")
    task: str = option("arith", "training task: a built-in task, a JSONL/parquet query pool or a hub id (test splits refused)")
    task_args: dict = option({"split": "train"}, "generator arguments (procedural tasks), local_file, or a pool's question_field / answer_field / split")
    data_dir: str | None = option(None, "folder with the tasks' local JSONL files")
    allow_test_split: bool = option(False, "train on a test split anyway (recorded in OUT/training_task.json)")
    method: str = option("auto", "rollout prompt (a method of baselines/): auto lets the model decide on code")
    steps: int = option(50, "policy updates to run")
    prompts_per_step: int = option(8, "distinct prompts per step")
    group_size: int = option(8, "rollouts per prompt (G); advantages are normalised within each group")
    max_tokens: int = option(256, "response token budget per rollout (model and tool tokens)")
    max_tool_calls: int = option(2, "executed code cells per rollout")
    temperature: float = option(1.0, "rollout sampling temperature")
    top_p: float = option(1.0, "rollout nucleus sampling")
    learning_rate: float = option(1e-6, "AdamW learning rate")
    lr_schedule: str = option("constant", "constant or cosine (after warmup)")
    warmup_steps: int = option(0, "linear warmup steps")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0: off)")
    clip_low: float = option(0.2, "PPO ratio clip below 1 (1 - clip_low)")
    clip_high: float = option(0.28, "PPO ratio clip above 1 (1 + clip_high; DAPO's clip-higher)")
    aggregation: str = option("token", "token (DAPO: pooled over all tokens) or sequence (GRPO: per-sequence mean)")
    advantage_scale: str = option("group", "group (GRPO), batch, or none (Dr.GRPO)")
    kl_weight: float = option(0.0, "weight of the k3 KL to the frozen starting policy (0: no reference model)")
    updates_per_batch: int = option(1, "optimisation passes over each batch of rollouts (PPO epochs)")
    mini_batches: int = option(2, "optimiser steps per pass, on slices of the batch; the clip only acts from the 2nd step")
    micro_batch_size: int = option(8, "sequences per forward/backward pass")
    format_reward: float = option(0.0, "bonus for a response with a \\boxed{} answer (off by default)")
    tool_reward: float = option(0.0, "bonus for a response that executed code (off by default)")
    seed: int = option(0, "seed for prompt order, rollouts and initialisation")
    output_dir: str = option("runs/rl", "checkpoints, logs and the final model go here")
    save_every: int = option(10, "steps between checkpoints (and at the end)")
    report_to: list = option(["jsonl"], "loggers: jsonl (always written), tensorboard, wandb")
    sandbox: str = option("local", "local or docker")
    sandbox_timeout: float = option(5.0, "seconds per code cell")
    device: str = option("auto", "auto, cpu or cuda")
    dtype: str = option("auto", "auto (bfloat16 on GPU, float32 on CPU), float32 or bfloat16")
    gradient_checkpointing: bool = option(False, "recompute activations in backward to save memory")

    def __post_init__(self) -> None:
        checks = {
            "aggregation": self.aggregation in ("token", "sequence"),
            "advantage_scale": self.advantage_scale in ("group", "batch", "none"),
            "lr_schedule": self.lr_schedule in SCHEDULES,
            "group_size": self.group_size >= 2,
            "steps": self.steps >= 1,
            "micro_batch_size": self.micro_batch_size >= 1,
            "updates_per_batch": self.updates_per_batch >= 1,
            "mini_batches": 1 <= self.mini_batches <= self.prompts_per_step * self.group_size,
            "sandbox": self.sandbox in ("local", "docker"),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"invalid {name}: {getattr(self, name)!r}")


PRESETS = {
    # The testbed: a warmed-up tiny model on `arith`, minutes on 2 CPU cores. One update per batch of 64 rollouts:
    # what the learning test measured; its learning rate, schedule and top_p match train-em's tiny preset.
    "tiny": dict(task="arith", task_args={"split": "train", "size": 2000}, method="auto", steps=30, prompts_per_step=8,
                 group_size=8, max_tokens=96, max_tool_calls=1, temperature=1.0, top_p=1.0, learning_rate=3e-4,
                 lr_schedule="constant", warmup_steps=0, mini_batches=1, micro_batch_size=32, save_every=10,
                 sandbox_timeout=2.0),
    # The documented recipe for real GPUs (ToRL/DAPO-style: outcome reward, no KL, clip-higher, token-level loss).
    "qwen2.5-7b": dict(task="gsm8k-train", method="auto", steps=500, prompts_per_step=64, group_size=16, max_tokens=4096,
                       max_tool_calls=4, temperature=1.0, learning_rate=1e-6, mini_batches=4, micro_batch_size=4, clip_low=0.2,
                       clip_high=0.28, kl_weight=0.0, dtype="bfloat16", gradient_checkpointing=True, save_every=50,
                       report_to=["jsonl", "tensorboard"]),
}

RLConfig.PRESETS = PRESETS


def preset(name: str) -> RLConfig:
    return RLConfig.preset(name)
