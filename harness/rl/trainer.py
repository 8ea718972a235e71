"""`harness train-rl`: vanilla RL with code execution inside the rollouts, on TRL's GRPOTrainer (trl==1.16.0).

TRL runs the loop: sampling prompts (each repeated ``group_size`` times), group-normalised advantages,
the clipped loss of ``loss_type`` (grpo, dapo, dr_grpo), gradient accumulation, DDP / FSDP
through accelerate, and vLLM when asked. What is ours (harness/rl/rollouts.py): the ``rollout_func``
that runs our RolloutEngine (```python / ```output, our sandbox) with tool-output tokens masked by
``env_mask``, and the reward (``harness.grading`` against the dataset's gold answer). This module maps
RLConfig onto GRPOConfig and keeps the run-folder rules every trainer shares: an output folder is
judged by run_folder.open_run, checkpoints have our layout (harness/training/checkpoint.py), a resume
keeps the live learning rate, and metrics.jsonl has one line per optimiser step.

Precision: float32 weights; on GPU ``dtype: auto`` adds bfloat16 autocast (Trainer's ``bf16``), so the
optimiser updates float32 master weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.rl.config import RLConfig


def on_cpu(config: RLConfig) -> bool:
    from harness.training.policy import uses_cuda

    return not uses_cuda(config.device)


def grpo_arguments(config: RLConfig, layout):
    """GRPOConfig for this RLConfig laid out as ``layout`` (training/layout.py): one optimiser step per
    prompts_per_step × group_size sequences, in micro-batches of micro_batch_size per process; bf16 autocast
    over float32 weights when the layout computes in bf16."""
    from trl import GRPOConfig

    _, accumulation = config.batch_rows(layout.processes)
    autocast = layout.compute_dtype == "bfloat16" and layout.weight_dtype == "float32"
    vllm = {"use_vllm": True, "vllm_mode": config.vllm_mode, "vllm_importance_sampling_correction": False,
            **config.vllm_args} if config.vllm_mode != "off" else {"use_vllm": False}
    return GRPOConfig(
        output_dir=config.output_dir, max_steps=config.steps, seed=config.seed, data_seed=config.seed,
        per_device_train_batch_size=config.micro_batch_size, gradient_accumulation_steps=accumulation,
        steps_per_generation=accumulation * config.steps_per_generation, num_generations=config.group_size,
        num_iterations=config.updates_per_batch, max_completion_length=config.max_tokens,
        temperature=config.temperature, top_p=config.top_p, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, loss_type=config.loss_type,
        epsilon=config.clip_low, epsilon_high=config.clip_high, scale_rewards=config.advantage_scale, beta=config.kl_weight,
        bf16=autocast, use_cpu=on_cpu(config),
        report_to="none", logging_steps=1,
        save_strategy="steps", save_steps=config.save_every, disable_tqdm=True, **vllm,
        **({"gradient_checkpointing": True} if config.gradient_checkpointing else {}), **config.grpo_args)


class RLTrainer:
    """``RLTrainer(config).train()`` runs to ``config.steps`` and returns the metrics of each step run."""

    def __init__(self, config: RLConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from harness.rl.strategies import build_strategy
        from harness.training.layout import launched_layout
        from harness.training.training_task import load_training_task

        self.config = config
        self.out = Path(config.output_dir)
        self.layout = launched_layout(config)  # what the trainer refuses fails here, before any loading
        self.args = grpo_arguments(config, self.layout)
        self.strategy = build_strategy(config)
        torch.manual_seed(config.seed)
        self.task, self.samples, self.method, self.task_record = load_training_task(config)
        # float32 master weights unless the layout says bfloat16; autocast comes from GRPOConfig.bf16.
        dtype = getattr(torch, self.layout.weight_dtype)
        self.model = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.sandbox = None
        self.grpo = None

    @property
    def backend(self):
        """The policy as a model backend (what the miniature reproduction evaluates after training)."""
        from harness.models.hf import HFBackend

        return HFBackend.from_loaded(self.model, self.tokenizer, Path(self.config.model).name)

    def dataset(self):
        """One row per training sample: the question TRL hands the rollout function, the gold answer (JSON)
        the reward grades against, and the task kind when the task has kinds."""
        from datasets import Dataset

        return Dataset.from_list([{"prompt": s.question, "answer": json.dumps(s.answer), "kind": s.metadata.get("kind")}
                                  for s in self.samples])

    def train(self, resume: bool = False, on_step=None, allow_config_change: bool = False) -> list[dict]:
        """Run to ``config.steps``; the output folder must be empty or, with ``resume``, this run's
        (run_folder.py), and is locked for the whole run."""
        from accelerate import PartialState

        from harness.training.run_folder import open_run

        config = self.config
        state = PartialState(cpu=on_cpu(config))
        with open_run(self.out, config.COMMAND, config.to_dict(), config.RESUME_MAY_CHANGE, resume=resume,
                      allow_config_change=allow_config_change, lock=state.is_main_process) as start:
            return self._train(start, state, on_step)

    def _train(self, start, state, on_step) -> list[dict]:
        from harness.sandbox import SandboxLimits, get_sandbox
        from harness.training.checkpoint import latest_checkpoint
        from harness.training.distributed import save_model_everywhere
        from harness.training.training_task import record_training_task

        config = self.config
        state.wait_for_everyone()  # every process has judged the folder before the main one writes to it
        if state.is_main_process:
            start.record()
            record_training_task(self.out, self.task_record)
            start.rewind("metrics.jsonl", lambda row: row.get("step", 0) <= start.step)
        state.wait_for_everyone()
        checkpoint = latest_checkpoint(self.out) if start.resuming else None
        history: list[dict] = []
        with get_sandbox(config.sandbox, limits=SandboxLimits(timeout_s=config.sandbox_timeout)) as sandbox:
            self.sandbox = sandbox
            self.grpo = self.build(history, on_step)
            if checkpoint is not None:
                restore_trainer_state(checkpoint)
            self.grpo.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            self.grpo.metric_logger.close()
        # The trained model in OUT itself, as train-sft leaves its own (bf16, like EM's OUT/iter-N): `harness eval
        # --model hf:OUT` evaluates it. A collective under FSDP.
        save_model_everywhere(self.grpo.accelerator, self.out, self.grpo.model, self.tokenizer)
        self.model = self.grpo.accelerator.unwrap_model(self.grpo.model)
        return history

    def build(self, history: list, on_step):
        import os

        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is "experimental"; the version is pinned
        from harness.rl.grpo import HarnessGRPOTrainer
        from harness.rl.rollouts import Reward, RolloutFunc

        return HarnessGRPOTrainer(
            self.config, history, on_step, self.strategy, model=self.model, processing_class=self.tokenizer, args=self.args,
            train_dataset=self.dataset(), reward_funcs=[Reward(self.config, self.task.grader)],
            rollout_func=RolloutFunc(self.config, self.method, self.sandbox))


def restore_trainer_state(checkpoint: Path) -> None:
    """Write TRL's trainer_state.json (global step, log history) beside our checkpoint from the copy kept in
    trainer.json, so Trainer's own resume finds the step to continue from and skips the data already seen."""
    from harness.io import atomic_write_text
    from harness.training.checkpoint import checkpoint_info

    path = Path(checkpoint) / "trainer_state.json"
    if not path.is_file():
        atomic_write_text(path, json.dumps(checkpoint_info(checkpoint)["extra"]["trainer_state"]))

