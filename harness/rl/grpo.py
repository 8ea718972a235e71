"""TRL's GRPOTrainer with the run-folder rules every harness trainer keeps.

- Checkpoints go to ``OUT/checkpoints/step-NNNNNN`` in our layout (harness/training/checkpoint.py): model,
  tokenizer, optimiser (one shard per process under FSDP), schedule, RNGs, and TRL's trainer state in
  ``trainer.json``; the newest two kept. Saving and loading are the ones SFT and EM use
  (harness/training/distributed.py), so a sharded run saves and resumes the same way.
- A resume restores the optimiser moments and the schedule's position but keeps the live optimiser's
  hyper-parameters, so a learning rate changed with --allow-config-change is the one used.
- The learning-rate schedule is the one SFT and EM use (harness/training/schedule.py).
- Each optimiser step's logs (TRL's metric names plus ours) go to metrics.jsonl, tensorboard or wandb,
  and to the caller's ``on_step``.
- The configured strategy (harness/rl/strategies) shapes the rewards TRL normalises and the advantages it
  trains on; ``strategy: none`` leaves TRL's GRPO as it is.
"""

from __future__ import annotations

import dataclasses
import json

from transformers.trainer_callback import PrinterCallback
from trl import GRPOTrainer


class HarnessGRPOTrainer(GRPOTrainer):
    def __init__(self, config, history: list, on_step, strategy=None, **kwargs) -> None:
        from harness.training.metrics import MetricLogger

        self.strategy = strategy  # harness.rl.strategies.build_strategy(config); None: plain GRPO
        super().__init__(**kwargs)
        self.remove_callback(PrinterCallback)  # our loggers and the CLI's progress bar report the steps
        self.config, self.history, self.on_step = config, history, on_step
        self.metric_logger = MetricLogger(config.output_dir, config.report_to, enabled=self.accelerator.is_main_process)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        import torch

        from harness.training.schedule import lr_factor

        if self.lr_scheduler is None:
            config = self.config
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer or self.optimizer,
                lambda step: lr_factor(step, config.steps, config.warmup_steps, config.lr_schedule))
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "train_runtime" in logs:  # Trainer's end-of-run summary, not a step
            return super().log(logs, start_time)
        before = len(self.state.log_history)
        super().log(logs, start_time)
        metrics = {"step": self.state.global_step, **self.state.log_history[before]}
        metrics.pop("epoch", None)
        self.metric_logger.log(metrics, self.state.global_step)
        self.history.append(metrics)
        if self.on_step:
            self.on_step(metrics)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.strategy is None:
            return rewards
        from harness.rl.strategies.hook import shape_rewards

        return shape_rewards(self, inputs, rewards)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.strategy is None:
            return output
        from harness.rl.strategies.hook import shape_output

        return shape_output(self, output)

    def _save_checkpoint(self, model, trial) -> None:
        """Every process takes part: under FSDP the full weights are gathered by a collective and each process
        writes its own optimiser shard (Trainer calls this on every process)."""
        from harness.training.distributed import save_checkpoint_everywhere

        state = json.loads(json.dumps(dataclasses.asdict(self.state), default=str))
        save_checkpoint_everywhere(self.accelerator, self.config.output_dir, self.state.global_step, self.model_wrapped,
                                   self.processing_class, self.optimizer, self.lr_scheduler,
                                   {"config": self.config.to_dict(), "trainer_state": state})

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        """Our checkpoint layout on every strategy; Trainer's own FSDP loader expects its sharded layout."""
        from harness.training.distributed import load_weights_everywhere

        load_weights_everywhere(self.accelerator, resume_from_checkpoint, model if model is not None else self.model)

    def _load_optimizer_and_scheduler(self, checkpoint) -> None:
        from harness.training.checkpoint import load_trainer_state

        if checkpoint is not None:
            load_trainer_state(checkpoint, self.optimizer, self.lr_scheduler, rank=self.accelerator.process_index)
