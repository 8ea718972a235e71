"""Turn (prompt, response segments) into token ids and a loss mask, and pad them into batches.

A response is a list of segments, ``{"kind": "model" | "tool", "text": ...}``, as the rollout engine
records them. Each piece is tokenized on its own, exactly as eval does (the prompt through the chat
template, each generated or tool segment separately), so training never sees a token boundary that
generation would not produce. Model tokens are learned (mask 1); tool tokens are context only
(mask 0): the model must not learn to imitate the interpreter. The EOS token that ends the turn is
learned too, or the model would never learn to stop.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100  # cross-entropy's ignore_index: positions with no target


@dataclass
class Example:
    input_ids: list[int]
    loss_mask: list[int]  # 1 where the token is a target the model must learn to produce

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.loss_mask):
            raise ValueError("input_ids and loss_mask differ in length")


def prompt_text(tokenizer, row: dict) -> str:
    """A row's prompt: ``prompt`` text as given, or ``messages`` through the tokenizer's chat template."""
    if "prompt" in row:
        return str(row["prompt"])
    if "messages" in row:
        return tokenizer.apply_chat_template(row["messages"], tokenize=False, add_generation_prompt=True)
    raise ValueError("a row needs 'prompt' (text) or 'messages' (a chat)")


def encode_example(tokenizer, row: dict) -> Example:
    """Ids and loss mask for one demonstration row (``segments``, or a plain ``response`` string)."""
    segments = row.get("segments")
    if segments is None:
        if "response" not in row:
            raise ValueError("a row needs 'segments' or 'response'")
        segments = [{"kind": "model", "text": str(row["response"])}]
    ids = list(tokenizer.encode(prompt_text(tokenizer, row), add_special_tokens=False))
    mask = [0] * len(ids)
    for segment in segments:
        if segment.get("kind") not in ("model", "tool"):
            raise ValueError(f"segment kind must be 'model' or 'tool', not {segment.get('kind')!r}")
        piece = tokenizer.encode(segment["text"], add_special_tokens=False)
        ids.extend(piece)
        mask.extend([int(segment["kind"] == "model")] * len(piece))
    if row.get("finished", True):
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token to end a finished response with")
        ids.append(tokenizer.eos_token_id)
        mask.append(1)
    return Example(ids, mask)


def example_from_ids(prompt_ids: list[int], response_ids: list[int], response_mask: list[int]) -> Example:
    """For trainers holding rollouts as exact ids (``Trajectory.response_ids`` and ``loss_mask``)."""
    return Example(list(prompt_ids) + list(response_ids), [0] * len(prompt_ids) + list(response_mask))


def collate(examples: list[Example], pad_token_id: int, max_length: int | None = None) -> dict:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (the next token, or IGNORE_INDEX).

    ``labels[t]`` is the target for the logits at position ``t``: the token at ``t + 1`` when that token
    is learned. Long examples are cut at ``max_length``, keeping their start.
    """
    import torch

    cut = [(e.input_ids[:max_length], e.loss_mask[:max_length]) if max_length else (e.input_ids, e.loss_mask) for e in examples]
    width = max(len(ids) for ids, _ in cut)
    input_ids = torch.full((len(cut), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(cut), width), dtype=torch.long)
    labels = torch.full((len(cut), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, mask) in enumerate(cut):
        n = len(ids)
        input_ids[row, :n] = torch.tensor(ids)
        attention_mask[row, :n] = 1
        targets = torch.tensor(ids[1:])
        learned = torch.tensor(mask[1:], dtype=torch.bool)
        labels[row, : n - 1] = torch.where(learned, targets, torch.full_like(targets, IGNORE_INDEX))
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def token_loss(logits, labels, normaliser: float | None = None):
    """Mean cross-entropy over the learned tokens of the batch (DAPO-style token mean); given ``normaliser``
    (a larger batch's learned-token count), this micro-batch's sum over it, so micro-batches add up to that batch's mean."""
    import torch.nn.functional as F

    flat = logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1)
    if normaliser is None:
        return F.cross_entropy(*flat, ignore_index=IGNORE_INDEX)
    return F.cross_entropy(*flat, ignore_index=IGNORE_INDEX, reduction="sum") / normaliser


def learned_tokens(example: Example, max_length: int | None) -> int:
    """How many targets ``collate`` gives an example (its learned tokens after the first, within ``max_length``)."""
    return sum(example.loss_mask[1:max_length])
