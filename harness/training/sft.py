"""Supervised fine-tuning on demonstrations: the warm-up before RL or EM.

Reads demonstration JSONL (a prompt or chat ``messages``, and a response as model/tool segments),
learns the model tokens only, logs to ``metrics.jsonl`` every ``log_every`` steps (Trainer's names:
``loss``, ``grad_norm``, ``learning_rate``, ``epoch``, ``step_time``) and checkpoints every ``save_every``
steps. Run it again with the
same output folder and it resumes from the latest checkpoint: weights, AdamW moments, the learning
rate schedule, the RNGs and the data order all continue as if it had never stopped.

The data order is a function of (seed, step) alone, a fresh seeded permutation per epoch, so a
resumed run needs only its step to know which batch comes next. Examples may be length-sorted
within runs of ``GROUP_BATCHES`` batches (less padding, a faster step on a CPU), but on arith that
made each batch one kind of problem and learning much slower per step (loss 1.59 vs 0.62 at step
600), so the default is 1: plain shuffled batches.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.io import read_jsonl
from harness.training import shared_fields as shared
from harness.training.checkpoint import latest_checkpoint, load_trainer_state
from harness.training.config import option
from harness.training.distributed import full_state_to_save, micro_batches, rounds, save_checkpoint_everywhere, share
from harness.training.metrics import METRICS_FILE, MetricLogger
from harness.training.run_folder import open_run
from harness.training.schedule import lr_factor, mix_seed
from harness.training.sequences import collate, encode_example, learned_tokens, token_loss

GROUP_BATCHES = 1


@dataclass
class SFTConfig(shared.TrainerFields):
    COMMAND: ClassVar[str] = "train-sft"
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset({"steps", "save_every", "log_every", "threads", "output_dir",
                                                             "report_to", "device"})

    data: str = option("", "demonstration JSONL: messages or prompt, and segments or response")
    output_dir: str = shared.output_dir("runs/sft")
    steps: int = option(1000, "optimiser steps in all", minimum=1)
    batch_size: int = option(32, "demonstrations per optimiser step, all processes together", minimum=1)
    learning_rate: float = shared.learning_rate(3e-3, ", cosine decay after the warm-up")
    warmup_steps: int = option(50, "linear warm-up steps", minimum=0)
    min_lr_ratio: float = option(0.1, "the cosine decay's floor, as a share of learning_rate", minimum=0, maximum=1)
    weight_decay: float = option(0.01, "AdamW weight decay (not on norms and biases)", minimum=0)
    max_grad_norm: float = option(1.0, "gradient clipping norm", above=0)
    max_length: int = option(256, "tokens kept per example (prompt + response)", minimum=2)
    save_every: int = shared.save_every(200, " (and one at the end)")
    log_every: int = option(25, "optimiser steps per metrics.jsonl line (the mean loss over them)", minimum=1)
    threads: int = option(0, "torch CPU threads; 0: every core", minimum=0)
    micro_batch_size: int = option(0, "most examples per forward/backward pass, per process; 0: the whole share", minimum=0)
    micro_batch_tokens: int = shared.micro_batch_tokens()
    dtype: str = shared.dtype("weights and AdamW states stay float32")


SFTConfig.PRESETS = {
    # The testbed's warm-up (`harness testbed warmup`): a tiny model on `arith` demonstrations, minutes on 2 cores.
    "tiny": dict(steps=2000, batch_size=32, learning_rate=3e-3, warmup_steps=50, max_length=256),
    # The warm-up of a 7B base before train-em's paper-7b / train-rl's qwen2.5-7b, under `accelerate launch
    # --config_file configs/accelerate-fsdp.yaml` (fp32 weights and AdamW, 16 bytes a parameter, fit 8 x 80 GiB
    # only sharded). The warm-up recipe is unpublished; v1's training script, plain SFT at round 0 without weights,
    # runs AdamW 2e-5, cosine after 3% warm-up, no weight decay, 128 sequences a step, bf16 (../shared/notes/paper.md),
    # and ToRA's tool-use SFT for 7B (microsoft/ToRA src/scripts/train.sh) agrees, with 2048 tokens (v1: 2000).
    # 1000 steps are 3 epochs of ~43K demonstrations: set --steps to 3 x demonstrations / 128 (warmup_steps to 3%
    # of it). tests/test_paper_fidelity.py holds the values against the paper.
    "qwen2.5-7b": dict(steps=1000, batch_size=128, learning_rate=2e-5, warmup_steps=30, min_lr_ratio=0.0,
                       weight_decay=0.0, max_length=2048, micro_batch_size=2, dtype="bfloat16",
                       gradient_checkpointing=True, log_every=10, save_every=100),
}


def batch_indices(step: int, batch_size: int, lengths: list[int], seed: int) -> list[int]:
    """The example indices of one step: slices of per-epoch seeded permutations, length-sorted per group."""
    import torch

    size, group = len(lengths), batch_size * GROUP_BATCHES
    first = (step * batch_size // group) * group
    members = []
    for position in range(first, first + group):
        epoch, offset = divmod(position, size)
        order = torch.randperm(size, generator=torch.Generator().manual_seed(mix_seed(seed, epoch)))
        members.append(int(order[offset]))
    members.sort(key=lambda index: lengths[index])
    start = step * batch_size - first
    return members[start : start + batch_size]


def load_examples(tokenizer, path: str | Path) -> list:
    examples = []
    for number, row in read_jsonl(Path(path)):
        try:
            example = encode_example(tokenizer, row)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        if not any(example.loss_mask):
            raise ValueError(f"{path}:{number}: the response has no model tokens to learn")
        examples.append(example)
    if not examples:
        raise ValueError(f"{path}: no demonstrations")
    return examples


def train_sft(config: SFTConfig, log=print, resume: bool = False, allow_config_change: bool = False, accelerator=None) -> dict:
    """Train (or, with ``resume``, continue the run in ``config.output_dir``) and save the final model there;
    returns a summary. The folder must be empty or this run's (run_folder.py). Under ``accelerate launch``
    each process trains on every world-th example of each step; only the main process writes."""
    from harness.training.policy import make_accelerator

    accelerator = accelerator or make_accelerator(config.device, config.dtype)
    with open_run(config.output_dir, config.COMMAND, config.to_dict(), config.RESUME_MAY_CHANGE, resume=resume,
                  allow_config_change=allow_config_change, lock=accelerator.is_main_process) as run:
        return _train_sft(config, run, accelerator, log)


def _train_sft(config: SFTConfig, run, accelerator, log) -> dict:
    """The run itself, in a folder ``run`` has judged and holds the lock of."""
    import torch

    from harness.training.policy import load_policy

    main = accelerator.is_main_process
    accelerator.wait_for_everyone()  # every process has judged the folder before the main one writes to it
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    output = Path(config.output_dir)
    resume_from = latest_checkpoint(output) if run.resuming else None
    # Every process loads the weights before accelerate shards them (FSDP), a checkpoint's on resume.
    model, tokenizer = load_policy(resume_from or config.model, config.gradient_checkpointing)
    model.train()
    examples = load_examples(tokenizer, config.data)
    lengths = [len(example.input_ids) for example in examples]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]  # norms: decaying them only shrinks the scale
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.learning_rate, betas=(0.9, 0.95))
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config.steps, config.warmup_steps, "cosine", config.min_lr_ratio))
    start = 0
    if resume_from is not None:
        start = load_trainer_state(resume_from, optimizer, scheduler, accelerator.process_index)["step"]
        log(f"resuming from {resume_from} at step {start}")
    else:
        torch.manual_seed(config.seed)
    if main:
        output.mkdir(parents=True, exist_ok=True)
        run.record()
        run.rewind(METRICS_FILE, lambda row: row.get("step", 0) <= start)
        (output / "sft_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    began, losses = time.perf_counter(), []
    window_began = began  # step_time: the mean over the steps since the last line
    with MetricLogger(output, config.report_to, enabled=main) as metrics:
        for step in range(start, config.steps):
            indices = batch_indices(step, config.batch_size, lengths, config.seed)
            loss, grad_norm = sft_step(model, optimizer, accelerator, [examples[i] for i in indices], pad, config)
            losses.append(loss)
            scheduler.step()
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                now = time.perf_counter()
                # Trainer's names and meanings: the mean loss since the last line, this step's norm and rate.
                record = {"step": done, "epoch": round(done * config.batch_size / len(examples), 4),
                          "loss": round(sum(losses) / len(losses), 4), "grad_norm": round(grad_norm, 4),
                          "learning_rate": scheduler.get_last_lr()[0], "step_time": round((now - window_began) / len(losses), 3)}
                metrics.log(record, done)
                if main:
                    log(f"step {done}/{config.steps}  loss {record['loss']:.4f}  lr {record['learning_rate']:.2e}  "
                        f"{now - began:.1f}s")
                losses, window_began = [], now
            if done % config.save_every == 0 and done < config.steps:
                save_checkpoint_everywhere(accelerator, output, done, model, tokenizer, optimizer, scheduler)
    if start < config.steps:
        save_checkpoint_everywhere(accelerator, output, config.steps, model, tokenizer, optimizer, scheduler)
    weights = full_state_to_save(accelerator, model)
    if main:
        accelerator.unwrap_model(model).save_pretrained(str(output), state_dict=weights)
        tokenizer.save_pretrained(str(output))
    accelerator.wait_for_everyone()
    return {"output": str(output), "steps": config.steps, "resumed_from": start, "examples": len(examples),
            "seconds": round(time.perf_counter() - began, 1)}


def sft_step(model, optimizer, accelerator, examples: list, pad: int, config: SFTConfig) -> tuple[float, float]:
    """One optimiser step on ``examples``: this process's share in micro-batches (as many as the busiest
    process runs; a dummy weighs 0), each the sum of its token losses over the whole batch's learned
    tokens x the process count, so the averaged gradient is the one-process token mean. Returns that mean
    and the gradient's norm before clipping."""
    import torch

    from harness.training.policy import autocast, micro_step

    world, rank = accelerator.num_processes, accelerator.process_index
    normaliser = max(sum(learned_tokens(e, config.max_length) for e in examples), 1)
    lengths = [min(len(e.input_ids), config.max_length) for e in examples]  # as collate cuts them
    plans = []
    for process in range(world):
        mine = share(len(examples), process, world)
        groups = micro_batches([lengths[i] for i in mine], config.micro_batch_size or len(examples), config.micro_batch_tokens)
        plans.append([[mine[i] for i in group] for group in groups])
    units = rounds(plans, rank)
    total = 0.0
    for number, group in enumerate(units):
        with micro_step(accelerator, model, last=number + 1 == len(units)):
            batch = collate([examples[i] for i in group or [0]], pad, config.max_length)
            device = accelerator.device
            with autocast(accelerator, config.dtype):
                logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
            loss = token_loss(logits, batch["labels"].to(device), normaliser) * (1.0 if group else 0.0)
            accelerator.backward(loss * world)
            total += float(loss.detach())
    grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if world > 1:
        total = float(accelerator.reduce(torch.tensor(total, device=accelerator.device), "sum"))
    return total, grad_norm
