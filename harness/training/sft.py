"""Supervised fine-tuning on demonstrations: the warm-up before RL or EM.

Reads demonstration JSONL (a prompt or chat ``messages``, and a response as model/tool segments),
learns the model tokens only, and checkpoints every ``save_every`` steps. Run it again with the
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from harness.io import read_jsonl
from harness.training.checkpoint import (
    latest_checkpoint,
    load_trainer_state,
    save_checkpoint,
)
from harness.training.run_folder import open_run
from harness.training.schedule import lr_factor, mix_seed
from harness.training.sequences import collate, encode_example, token_loss

GROUP_BATCHES = 1


@dataclass
class SFTConfig:
    COMMAND: ClassVar[str] = "train-sft"
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset({"steps", "save_every", "log_every", "threads", "output"})

    model: str  # a folder AutoModelForCausalLM/AutoTokenizer load
    data: str  # demonstration JSONL
    output: str
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 256
    seed: int = 0
    save_every: int = 200
    log_every: int = 25
    threads: int = 0  # 0: every core


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


def train_sft(config: SFTConfig, log=print, resume: bool = False, allow_config_change: bool = False) -> dict:
    """Train (or, with ``resume``, continue the run in ``config.output``) and save the final model there;
    returns a summary. The folder must be empty or this run's (run_folder.py)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = open_run(config.output, config.COMMAND, asdict(config), config.RESUME_MAY_CHANGE, resume=resume,
                   allow_config_change=allow_config_change)
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    output = Path(config.output)
    resume_from = latest_checkpoint(output) if run.resuming else None
    source = str(resume_from or config.model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model.train()
    examples = load_examples(tokenizer, config.data)
    lengths = [len(example.input_ids) for example in examples]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]  # norms: decaying them only shrinks the scale
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.learning_rate, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config.steps, config.warmup_steps, "cosine", config.min_lr_ratio))
    start = 0
    if resume_from is not None:
        start = load_trainer_state(resume_from, optimizer, scheduler)["step"]
        log(f"resuming from {resume_from} at step {start}")
    else:
        torch.manual_seed(config.seed)
    output.mkdir(parents=True, exist_ok=True)
    run.record()
    run.rewind("train_log.jsonl", lambda row: row.get("step", 0) <= start)
    (output / "sft_config.json").write_text(json.dumps(asdict(config), indent=2))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    began, losses = time.perf_counter(), []
    with (output / "train_log.jsonl").open("a", encoding="utf-8") as log_file:
        for step in range(start, config.steps):
            batch = collate([examples[i] for i in batch_indices(step, config.batch_size, lengths, config.seed)], pad, config.max_length)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = token_loss(logits, batch["labels"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                record = {"step": done, "loss": round(sum(losses) / len(losses), 4), "lr": scheduler.get_last_lr()[0],
                          "seconds": round(time.perf_counter() - began, 1)}
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log(f"step {done}/{config.steps}  loss {record['loss']:.4f}  lr {record['lr']:.2e}  {record['seconds']}s")
                losses = []
            if done % config.save_every == 0 and done < config.steps:
                save_checkpoint(output, done, model, tokenizer, optimizer, scheduler)
    if start < config.steps:
        save_checkpoint(output, config.steps, model, tokenizer, optimizer, scheduler)
    model.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    return {"output": str(output), "steps": config.steps, "resumed_from": start, "examples": len(examples),
            "seconds": round(time.perf_counter() - began, 1)}
