"""From trajectories to training tensors, and per-token log-probabilities of a batch.

``continuation_logprobs`` scores short continuations (EM's decision prefixes) without the full-vocabulary
log-softmax over every position: rows are left-padded so every continuation ends the row, and the
model computes logits for the last positions only (``logits_to_keep``).

A row is prompt + response token ids, right-padded. ``mask[t]`` says whether token ``t + 1`` (the
target predicted at position ``t``) is one the policy generated: prompt, padding and tool-output
tokens are 0, so they never get gradient. Trainers never re-tokenize text: the ids are the rollout's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.training.losses import token_logprobs


@dataclass
class Batch:
    input_ids: torch.Tensor  # (rows, length)
    attention_mask: torch.Tensor  # (rows, length)
    mask: torch.Tensor  # (rows, length - 1): 1 where the target token is a model token



def build_batch(prompts: list[list[int]], responses: list[list[int]], loss_masks: list[list[int]], pad_token_id: int) -> Batch:
    rows = [p + r for p, r in zip(prompts, responses, strict=True)]
    length = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    mask = torch.zeros((len(rows), length - 1), dtype=torch.float32)
    for i, (prompt, row, loss_mask) in enumerate(zip(prompts, rows, loss_masks)):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention[i, : len(row)] = 1
        # target j (token j) is predicted at position j - 1
        mask[i, len(prompt) - 1 : len(row) - 1] = torch.tensor(loss_mask, dtype=torch.float32)
    return Batch(input_ids, attention, mask)


def batch_logprobs(model, batch: Batch) -> torch.Tensor:
    """log pi(token t+1 | tokens <= t) for every position, shape (rows, length - 1)."""
    device = next(model.parameters()).device
    input_ids, attention = batch.input_ids.to(device), batch.attention_mask.to(device)
    logits = model(input_ids=input_ids, attention_mask=attention, use_cache=False).logits[:, :-1]
    return token_logprobs(logits, input_ids[:, 1:])


def continuation_logprobs(model, prompts: list[list[int]], continuations: list[list[int]],
                          pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log P(continuation token | everything before) for each row, shape (rows, longest continuation), with
    a mask of the real tokens; continuations are right-aligned (the row's last tokens). Called on the
    wrapped model, so DDP/FSDP hooks run; position ids are passed because the rows are left-padded."""
    rows = [p + c for p, c in zip(prompts, continuations, strict=True)]
    length, keep = max(len(row) for row in rows), max(len(c) for c in continuations)
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    mask = torch.zeros((len(rows), keep))
    for i, (row, continuation) in enumerate(zip(rows, continuations)):
        input_ids[i, length - len(row):] = torch.tensor(row, dtype=torch.long)
        attention[i, length - len(row):] = 1
        mask[i, keep - len(continuation):] = 1
    device = next(model.parameters()).device
    input_ids, attention = input_ids.to(device), attention.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    # The logits at positions length-keep-1 .. length-2 predict the last ``keep`` tokens.
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=False,
                   logits_to_keep=keep + 1).logits[:, :-1]
    return token_logprobs(logits, input_ids[:, length - keep:]) * mask.to(device), mask.to(device)
