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
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset({"steps", "save_every", "output_dir", "report_to", "device"})

    model: str = option("", "policy to start from: a Hugging Face model folder")
    task: str = option("arith", "training task: a built-in task, a JSONL/parquet query pool or a hub id (test splits refused)")
    task_args: dict = option({"split": "train"}, "generator arguments (procedural tasks), local_file, or a pool's question_field / answer_field / split")
    data_dir: str | None = option(None, "folder with the tasks' local JSONL files")
    allow_test_split: bool = option(False, "train on a test split anyway (recorded in OUT/training_task.json)")
    method: str = option("auto", "rollout prompt (a method of baselines/): auto lets the model decide on code")
    steps: int = option(50, "policy updates to run", minimum=1)
    prompts_per_step: int = option(8, "distinct prompts per step", minimum=1)
    group_size: int = option(8, "rollouts per prompt (G); advantages are normalised within each group", minimum=2)
    max_tokens: int = option(256, "response token budget per rollout (model and tool tokens)", minimum=1)
    max_tool_calls: int = option(2, "executed code cells per rollout", minimum=0)
    temperature: float = option(1.0, "rollout sampling temperature", minimum=0)
    top_p: float = option(1.0, "rollout nucleus sampling", above=0, maximum=1)
    learning_rate: float = option(1e-6, "AdamW learning rate", above=0)
    lr_schedule: str = option("constant", "constant or cosine (after warmup)", choices=SCHEDULES)
    warmup_steps: int = option(0, "linear warmup steps", minimum=0)
    weight_decay: float = option(0.0, "AdamW weight decay", minimum=0)
    max_grad_norm: float = option(1.0, "gradient clipping norm (0: off)", minimum=0)
    clip_low: float = option(0.2, "PPO ratio clip below 1 (1 - clip_low)", minimum=0, maximum=1)
    clip_high: float = option(0.28, "PPO ratio clip above 1 (1 + clip_high; DAPO's clip-higher)", minimum=0)
    aggregation: str = option("token", "token (DAPO: pooled over all tokens) or sequence (GRPO: per-sequence mean)", choices=("token", "sequence"))
    advantage_scale: str = option("group", "group (GRPO), batch, or none (Dr.GRPO)", choices=("group", "batch", "none"))
    kl_weight: float = option(0.0, "weight of the k3 KL to the frozen starting policy (0: no reference model)", minimum=0)
    updates_per_batch: int = option(1, "optimisation passes over each batch of rollouts (PPO epochs)", minimum=1)
    mini_batches: int = option(2, "optimiser steps per pass, on slices of the batch; the clip only acts from the 2nd step", minimum=1)
    micro_batch_size: int = option(8, "sequences per forward/backward pass", minimum=1)
    format_reward: float = option(0.0, "bonus for a response with a \\boxed{} answer (off by default)")
    tool_reward: float = option(0.0, "bonus for a response that executed code (off by default)")
    seed: int = option(0, "seed for prompt order, rollouts and initialisation")
    output_dir: str = option("runs/rl", "checkpoints, logs and the final model go here")
    save_every: int = option(10, "steps between checkpoints (and at the end)", minimum=1)
    report_to: list = option(["jsonl"], "loggers: jsonl (always written), tensorboard, wandb", choices=("jsonl", "tensorboard", "wandb"))
    sandbox: str = option("local", "local or docker", choices=("local", "docker"))
    sandbox_timeout: float = option(5.0, "seconds per code cell", above=0)
    device: str = option("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))
    dtype: str = option("auto", "auto (bfloat16 on GPU, float32 on CPU), float32 or bfloat16", choices=("auto", "float32", "bfloat16"))
    gradient_checkpointing: bool = option(False, "recompute activations in backward to save memory")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mini_batches > self.prompts_per_step * self.group_size:
            raise ValueError(f"mini_batches: at most prompts_per_step × group_size = {self.prompts_per_step * self.group_size} (got {self.mini_batches})")


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
