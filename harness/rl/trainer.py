"""`harness train-rl`: on-policy RL with code execution inside the rollouts (the paper's vanilla RL baseline).

One step:
  1. pick ``prompts_per_step`` training prompts (a pure function of seed and step, so a resumed run
     picks the same ones) and roll each out ``group_size`` times through the shared rollout engine
     (real sandbox, real tool calls; ``method`` auto by default: the model decides on code);
  2. reward = the scorer (1/0), plus optional format / tool bonuses (off by default);
  3. advantages normalised within each prompt's group;
  4. ``updates_per_batch`` passes over the batch, each in ``mini_batches`` optimiser steps, of the PPO
     clipped surrogate (separate low/high clip; it binds from the second step on), token-level
     averaging, tool tokens masked, optional k3 KL to the frozen starting policy;
  5. log TRL's metric names plus code rate per task kind; checkpoint every ``save_every`` steps.

Distributed: run under ``accelerate launch``; each process rolls out its share of the prompts, and
losses are normalised by the token (or sequence) count of the whole global batch, so N processes
compute the same gradient as one process on the same batch.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch

from harness.rl.batch import Batch, batch_logprobs, build_batch, chunked_logprobs
from harness.rl.config import RLConfig
from harness.rl.logging import MetricLogger
from harness.rl.losses import aggregate, clipped_policy_loss, group_advantages, kl_k3
from harness.training.checkpoint import resume_into, save_checkpoint
from harness.training.schedule import lr_factor, mix_seed


def choose_prompts(num_samples: int, count: int, seed: int, step: int) -> list[int]:
    return random.Random(mix_seed(seed, step)).sample(range(num_samples), min(count, num_samples))


def policy_loss(model, batch: Batch, old_logprobs, advantages, ref_logprobs, config: RLConfig, normaliser: float):
    """This micro-batch's share of the global loss (clipped surrogate + k3 KL), normalised by the global count."""
    logprobs = batch_logprobs(model, batch)
    mask = batch.mask.to(logprobs.device)
    loss, stats = clipped_policy_loss(logprobs, old_logprobs.to(logprobs.device), advantages.to(logprobs.device), mask,
                                      config.clip_low, config.clip_high, config.aggregation, normaliser)
    kl_sum = 0.0
    if ref_logprobs is not None:
        kl = kl_k3(logprobs, ref_logprobs.to(logprobs.device))
        loss = loss + config.kl_weight * aggregate(kl, mask, config.aggregation, normaliser)
        kl_sum = float((kl.detach() * mask).sum())
    return loss, {"clipped_tokens": stats["clipped_tokens"], "kl_sum": kl_sum}


def accumulate_gradients(model, accelerator, batch: Batch, old_logprobs, advantages, ref_logprobs, config: RLConfig) -> dict:
    """Backward over the batch in micro-batches. Losses are normalised by the token (or sequence) count of
    the *global* batch, all processes together, so the gradient does not depend on how rows are split."""
    local = batch.tokens if config.aggregation == "token" else int((batch.mask.sum(-1) > 0).sum())
    normaliser = float(accelerator.reduce(torch.tensor(float(local), device=accelerator.device), "sum"))
    # DDP averages gradients over processes; dividing the normaliser by the process count undoes that.
    normaliser = max(normaliser, 1.0) / accelerator.num_processes
    totals = {"loss": 0.0, "clipped_tokens": 0.0, "kl_sum": 0.0}
    for i in range(0, len(batch.input_ids), config.micro_batch_size):
        rows = slice(i, i + config.micro_batch_size)
        loss, stats = policy_loss(model, batch.rows(rows), old_logprobs[rows], advantages[rows],
                                  None if ref_logprobs is None else ref_logprobs[rows], config, normaliser)
        accelerator.backward(loss)
        totals["loss"] += loss.item()
        totals["clipped_tokens"] += stats["clipped_tokens"]
        totals["kl_sum"] += stats["kl_sum"]
    return totals


def update_policy(model, optimizer, scheduler, accelerator, reference, batch: Batch, advantages, config: RLConfig) -> dict:
    """``updates_per_batch`` passes (PPO epochs) over one batch of rollouts, each pass ``mini_batches`` optimiser
    steps on consecutive slices of it. π_old is the policy before the first step, so from the second step on
    the ratio moves away from 1 and the clip (and clip-higher) act; with one step per batch the ratio is
    exactly 1 and the clip never binds. Returns loss, clip_ratio, kl, grad_norm; the schedule steps once."""
    old = chunked_logprobs(model, batch, config.micro_batch_size)
    ref = chunked_logprobs(reference, batch, config.micro_batch_size) if reference is not None else None
    model.train()
    rows = len(batch.input_ids)
    bounds = [round(i * rows / config.mini_batches) for i in range(config.mini_batches + 1)]
    totals = {"loss": 0.0, "clipped_tokens": 0.0, "kl_sum": 0.0, "grad_norm": 0.0}
    for _ in range(config.updates_per_batch):
        for start, end in zip(bounds, bounds[1:]):
            part = slice(start, end)
            gradients = accumulate_gradients(model, accelerator, batch.rows(part), old[part], advantages[part],
                                             None if ref is None else ref[part], config)
            for key, value in gradients.items():
                totals[key] += value
            if config.max_grad_norm > 0:
                totals["grad_norm"] = float(accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    updates = config.updates_per_batch * config.mini_batches
    tokens = max(batch.tokens, 1) * config.updates_per_batch
    return {"loss": totals["loss"] / updates, "clip_ratio": totals["clipped_tokens"] / tokens,
            "kl": totals["kl_sum"] / tokens, "grad_norm": totals["grad_norm"]}


def load_policy(path: str, dtype: str, device):
    """(model, tokenizer) from a Hugging Face folder; ``dtype`` auto = bfloat16 on GPU, float32 on CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    if torch_dtype is None:
        torch_dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device), AutoTokenizer.from_pretrained(path)


class RLTrainer:
    def __init__(self, config: RLConfig, accelerator=None) -> None:
        from accelerate import Accelerator

        self.config = config
        self.accelerator = accelerator or Accelerator(cpu=config.device == "cpu")
        self.out = Path(config.output_dir)
        torch.manual_seed(config.seed)
        self._load_policy()
        self._load_task()
        self.step = 0

    def _load_policy(self) -> None:
        from harness.models.hf import HFBackend

        config = self.config
        model, self.tokenizer = load_policy(config.model, config.dtype, self.accelerator.device)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.reference = None
        if config.kl_weight > 0:
            self.reference = load_policy(config.model, config.dtype, self.accelerator.device)[0].eval()
            self.reference.requires_grad_(False)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, config.steps, config.warmup_steps, config.lr_schedule))
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        # Rollouts run on the very module being trained: every update is visible to the next rollout.
        self.backend = HFBackend.from_loaded(self.accelerator.unwrap_model(self.model), self.tokenizer, Path(config.model).name)

    def _load_task(self) -> None:
        from harness.rl.training_task import load_training_task

        self.task, self.samples, self.method, self.task_record = load_training_task(self.config)

    def rollouts(self, step: int):
        """This process's share of the step's prompts, each rolled out group_size times."""
        from harness.eval.rollout import RolloutEngine
        from harness.grading import grade_batch
        from harness.models import SamplingParams

        config = self.config
        chosen = choose_prompts(len(self.samples), config.prompts_per_step, config.seed, step)
        mine = chosen[self.accelerator.process_index :: self.accelerator.num_processes]
        samples = [self.samples[i] for i in mine for _ in range(config.group_size)]
        prompts = [self.backend.encode(self.backend.chat_prompt(self.method.messages(s.question))) for s in samples]
        seeds = [mix_seed(config.seed, step, i * config.group_size + g) for i in mine for g in range(config.group_size)]
        params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_tokens)
        engine = RolloutEngine(self.backend, params, tools=self.method.tools, sandbox=self.sandbox,
                               max_tool_calls=config.max_tool_calls, max_tokens=config.max_tokens)
        self.model.eval()
        trajectories = engine.run(prompts, seeds)
        grades = grade_batch([(t.response_text, s.answer, self.task.grader) for s, t in zip(samples, trajectories)])
        rewards = [float(bool(g.correct)) + config.format_reward * (g.status != "no_answer") + config.tool_reward * t.used_code
                   for g, t in zip(grades, trajectories)]
        groups = [s.id for s in samples]
        return samples, prompts, trajectories, rewards, groups, engine.stats

    def update(self, batch: Batch, advantages: torch.Tensor) -> dict:
        return update_policy(self.model, self.optimizer, self.scheduler, self.accelerator, self.reference, batch,
                             advantages, self.config)

    def train_step(self, step: int) -> dict:
        started = time.perf_counter()
        samples, prompts, trajectories, rewards, groups, stats = self.rollouts(step)
        rollout_s = time.perf_counter() - started
        advantages = group_advantages(rewards, groups, self.config.advantage_scale)
        batch = build_batch(prompts, [t.response_ids for t in trajectories], [t.loss_mask for t in trajectories],
                            self.backend.pad_token_id)
        started = time.perf_counter()
        update = self.update(batch, advantages)
        metrics = {"step": step + 1, **update, **rollout_metrics(samples, trajectories, rewards, groups),
                   "learning_rate": self.scheduler.get_last_lr()[0], "time/rollout_s": rollout_s,
                   "time/generate_s": stats.generate_s, "time/tools_s": stats.tool_s,
                   "time/update_s": time.perf_counter() - started}
        return metrics

    def train(self, resume: bool = False, on_step=None, allow_config_change: bool = False) -> list[dict]:
        """Run to ``config.steps``; the output folder must be empty or, with ``resume``, this run's (run_folder.py)."""
        from harness.rl.training_task import record_training_task
        from harness.sandbox import SandboxLimits, get_sandbox
        from harness.training.run_folder import open_run

        config = self.config
        start = open_run(self.out, config.COMMAND, config.to_dict(), config.RESUME_MAY_CHANGE, resume=resume,
                         allow_config_change=allow_config_change)
        self.accelerator.wait_for_everyone()  # every process has judged the folder before the main one writes to it
        if self.accelerator.is_main_process:
            start.record()
            record_training_task(self.out, self.task_record)
            start.rewind("metrics.jsonl", lambda row: row.get("step", 0) <= start.step)
        self.accelerator.wait_for_everyone()
        if start.resuming:
            info = resume_into(self.out, self.accelerator.unwrap_model(self.model), self.optimizer, self.scheduler)
            self.step = info["step"] if info else 0
        self.logger = MetricLogger(self.out, config.report_to, enabled=self.accelerator.is_main_process)
        history = []
        with get_sandbox(self.config.sandbox, limits=SandboxLimits(timeout_s=self.config.sandbox_timeout)) as sandbox:
            self.sandbox = sandbox
            while self.step < self.config.steps:
                metrics = self.train_step(self.step)
                self.step += 1
                self.logger.log(metrics, self.step)
                history.append(metrics)
                if on_step:
                    on_step(metrics)
                if self.step % self.config.save_every == 0 or self.step == self.config.steps:
                    self.accelerator.wait_for_everyone()
                    if self.accelerator.is_main_process:
                        save_checkpoint(self.out, self.step, self.accelerator.unwrap_model(self.model), self.tokenizer,
                                        self.optimizer, self.scheduler, {"config": self.config.to_dict()})
        self.logger.close()
        return history


def rollout_metrics(samples, trajectories, rewards, groups) -> dict:
    """TRL's names where they exist (reward, reward_std, completions/*, tools/*), plus code rate per task kind."""
    n = len(trajectories)
    calls = [len(t.tool_calls) for t in trajectories]
    failed = sum(call.status != "ok" for t in trajectories for call in t.tool_calls)
    by_group: dict = {}
    for group, reward in zip(groups, rewards):
        by_group.setdefault(group, []).append(reward)
    mean_reward = sum(rewards) / n
    metrics = {
        "reward": mean_reward,
        "reward_std": (sum((r - mean_reward) ** 2 for r in rewards) / n) ** 0.5,
        "frac_reward_zero_std": sum(len(set(v)) == 1 for v in by_group.values()) / len(by_group),
        "completions/mean_length": sum(sum(t.loss_mask) for t in trajectories) / n,
        "completions/clipped_ratio": sum(t.finish_reason == "length" for t in trajectories) / n,
        "tools/call_frequency": sum(calls) / n,
        "tools/failure_frequency": failed / max(sum(calls), 1),
        "code_rate": sum(c > 0 for c in calls) / n,
    }
    kinds: dict = {}
    for sample, trajectory, reward in zip(samples, trajectories, rewards):
        kind = sample.metadata.get("kind")
        if kind is not None:
            kinds.setdefault(kind, []).append((trajectory.used_code, reward))
    for kind, values in sorted(kinds.items()):
        metrics[f"code_rate/{kind}"] = sum(used for used, _ in values) / len(values)
        metrics[f"reward/{kind}"] = sum(r for _, r in values) / len(values)
    return metrics
