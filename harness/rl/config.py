"""`train-rl`'s configuration: one dataclass, loadable from YAML, with presets.

Every field has help text (``help_text()`` lists it); a YAML file holds any subset of the fields,
and unknown keys are an error rather than silently ignored. The trainer is TRL's GRPOTrainer
(harness/rl/trainer.py), so most fields are its ``GRPOConfig`` fields under our names; ``grpo_args``
passes any other GRPOConfig field through unchanged.

A step is one optimiser step on ``prompts_per_step × group_size`` sequences (all processes together).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.rl.strategies import STRATEGIES
from harness.training import shared_fields as shared
from harness.training.config import option

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
VLLM_MODES = ("off", "colocate", "server")


@dataclass
class RLConfig(shared.RolloutTrainerFields):
    COMMAND: ClassVar[str] = "train-rl"
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset({"steps", "save_every", "output_dir", "report_to", "device"})

    method: str = option("auto", "rollout prompt (a method of baselines/): auto lets the model decide on code")
    steps: int = option(50, "optimiser steps to run", minimum=1)
    prompts_per_step: int = option(8, "distinct prompts per optimiser step, all processes together", minimum=1)
    group_size: int = option(8, "rollouts per prompt (G, TRL's num_generations); advantages are normalised within each group", minimum=2)
    max_tokens: int = shared.max_tokens(256)
    top_p: float = shared.top_p(1.0)
    learning_rate: float = shared.learning_rate(1e-6)
    lr_schedule: str = shared.lr_schedule("constant")
    warmup_steps: int = option(0, "linear warmup steps", minimum=0)
    weight_decay: float = option(0.0, "AdamW weight decay", minimum=0)
    max_grad_norm: float = option(1.0, "gradient clipping norm (0: off)", minimum=0)
    loss_type: str = option("dapo", "TRL loss: dapo (token-level over the batch), grpo (per-sequence mean) or dr_grpo", choices=LOSS_TYPES)
    clip_low: float = option(0.2, "PPO ratio clip below 1 (TRL's epsilon)", minimum=0, maximum=1)
    clip_high: float = option(0.28, "PPO ratio clip above 1 (TRL's epsilon_high; DAPO's clip-higher)", minimum=0)
    advantage_scale: str = option("group", "reward scaling (TRL's scale_rewards): group (GRPO), batch, or none (Dr.GRPO)",
                                  choices=("group", "batch", "none"))
    kl_weight: float = option(0.0, "TRL's beta: weight of the k3 KL to the frozen starting policy (0: no reference model)", minimum=0)
    steps_per_generation: int = option(1, "optimiser steps per batch of rollouts; above 1 the policy is off-policy from the 2nd step "
                                          "and the clip acts", minimum=1)
    updates_per_batch: int = option(1, "passes over each batch of rollouts (TRL's num_iterations, PPO epochs)", minimum=1)
    micro_batch_size: int = option(8, "sequences per forward/backward pass per process (per_device_train_batch_size); "
                                      "gradients accumulate to the step's batch", minimum=1)
    format_reward: float = option(0.0, "bonus for a response with a \\boxed{} answer (off by default)")
    tool_reward: float = option(0.0, "bonus for a response that executed code (off by default)")
    strategy: str = option("none", "reward/advantage shaper on GRPO (docs/rl.md): none, otc, adatir or roc", choices=STRATEGIES)
    vllm_mode: str = option("off", "rollouts through TRL's vLLM: off (the policy generates, HF), colocate or server", choices=VLLM_MODES)
    vllm_args: dict = option({}, "other GRPOConfig vllm_* fields, e.g. {vllm_gpu_memory_utilization: 0.3, vllm_server_host: ...}")
    grpo_args: dict = option({}, "any other GRPOConfig field, passed to TRL as is (e.g. {mask_truncated_completions: true})")
    output_dir: str = shared.output_dir("runs/rl")
    save_every: int = shared.save_every(10, " (and one at the end)")
    dtype: str = shared.dtype("float32 weights unless bfloat16, which makes the weights bfloat16 too")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, values in (("vllm_args", self.vllm_args), ("grpo_args", self.grpo_args)):
            ours = sorted(set(values) & OWNED_GRPO_FIELDS)
            if ours:
                raise ValueError(f"{name}: {', '.join(ours)} set by RLConfig's own fields (see --help-config)")

    def batch_rows(self, processes: int) -> tuple[int, int]:
        """(per-process rows per step, gradient accumulation steps), or ValueError if the batch does not split."""
        rows = self.prompts_per_step * self.group_size
        if rows % processes:
            raise ValueError(f"prompts_per_step × group_size = {rows} does not split over {processes} processes")
        local = rows // processes
        if local % self.micro_batch_size:
            raise ValueError(f"micro_batch_size: {self.micro_batch_size} does not divide the {local} sequences per process per step")
        return local, local // self.micro_batch_size


# GRPOConfig fields RLConfig sets itself (trainer.grpo_arguments), so grpo_args / vllm_args cannot contradict them.
OWNED_GRPO_FIELDS = frozenset({
    "output_dir", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation",
    "num_generations", "num_iterations", "max_completion_length", "temperature", "top_p", "learning_rate",
    "weight_decay", "max_grad_norm", "loss_type", "epsilon", "epsilon_high", "scale_rewards", "beta", "seed",
    "use_vllm", "vllm_mode", "bf16", "gradient_checkpointing", "use_cpu", "report_to", "logging_steps",
    "save_strategy", "lr_scheduler_type", "warmup_steps",
})

PRESETS = {
    # The testbed: a warmed-up tiny model on `arith`, minutes on 2 CPU cores; 64 rollouts per step. Its learning
    # rate, schedule and top_p match train-em's tiny preset.
    "tiny": dict(task="arith", task_args={"split": "train", "size": 2000}, method="auto", steps=30, prompts_per_step=8,
                 group_size=8, max_tokens=96, max_tool_calls=1, temperature=1.0, top_p=1.0, learning_rate=3e-4,
                 lr_schedule="constant", warmup_steps=0, micro_batch_size=32, save_every=10, sandbox_timeout=2.0),
    # The paper's vanilla-RL baseline ("Base+RL", DeepSeek-R1 style), matched to train-em's paper-7b where the two
    # share a quantity (tests/rl/test_fidelity.py): the paper's pool, 16 rollouts per query (EM: 2 x k), 3 x 7000
    # queries in all, so the same 336K rollouts, each trained on once; 128 sequences per optimiser step, 2000
    # tokens, top_p 0.95. The paper gives no hyperparameters for it, so the rest is the tool-use GRPO recipes'
    # (ToRL, DAPO; ../shared/notes/rl_anchors.md): AdamW 1e-6 constant (v1's 2e-5 is its off-policy EM trainer's),
    # outcome reward, no KL, clip-higher. tests/test_paper_fidelity.py holds these against the paper.
    "qwen2.5-7b": dict(task="paper-pool", method="auto", steps=2625, prompts_per_step=8, group_size=16, max_tokens=2000,
                       max_tool_calls=4, temperature=1.0, top_p=0.95, learning_rate=1e-6, lr_schedule="constant",
                       warmup_steps=0, micro_batch_size=2, loss_type="dapo", clip_low=0.2, clip_high=0.28, kl_weight=0.0,
                       dtype="auto", gradient_checkpointing=True, vllm_mode="colocate", save_every=100,
                       report_to=["jsonl", "tensorboard"]),
}

RLConfig.PRESETS = PRESETS


def preset(name: str) -> RLConfig:
    return RLConfig.preset(name)
