"""The reference decode loop for Hugging Face models: left-padded batches over a growing KV cache.

Each chunk of up to ``batch_size`` prompts (sorted by length, so chunks pad little) is prefilled once; then
each step feeds one token per live row and reuses the cache, so the prompt is never recomputed. When rows
finish, they are dropped from the batch and from the cache, so a finished sequence costs nothing further and
the loop ends as soon as the last row finishes.

This path favours obviousness over speed. It is the yardstick the slot engine (``hf_slot_decode.py``) is
tested against, and the engine for models the slot cache cannot serve (sliding-window layers, flash kernels).
"""

from __future__ import annotations

from typing import Any

from harness.models.sampling import choose_next_tokens
from harness.models.stopping import FinishRules
from harness.models.types import Generation, GenerationRequest, SamplingParams


def cache_keyword(model: Any) -> str:
    """Transformers 5 renamed the forward's ``past_key_values`` argument to ``cache``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def generate_simple(
    model: Any,
    requests: list[GenerationRequest],
    params: SamplingParams,
    rules: FinishRules,
    batch_size: int,
    pad_token_id: int,
) -> list[Generation]:
    """Generate for every request, ``batch_size`` prompts at a time; results come back in request order."""
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
    results: list[Generation | None] = [None] * len(requests)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        seeds = [params.request_seed(requests[i], i) for i in chunk]
        prompts = [requests[i].prompt_ids for i in chunk]
        for index, generation in zip(chunk, _generate_chunk(model, prompts, seeds, params, rules, pad_token_id)):
            results[index] = generation
    return [r for r in results if r is not None]


def _generate_chunk(
    model: Any,
    prompts: list[list[int]],
    seeds: list[int],
    params: SamplingParams,
    rules: FinishRules,
    pad_token_id: int,
) -> list[Generation]:
    import torch
    from transformers import DynamicCache

    device = model.device
    input_ids, attention_mask = _left_pad(prompts, pad_token_id, device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    cache_arg = {cache_keyword(model): cache}
    progress = [rules.new_progress() for _ in prompts]
    live = list(range(len(prompts)))  # original row of each row still in the batch
    seeds_t = torch.tensor(seeds, dtype=torch.int64, device=device)
    next_positions = torch.tensor([len(p) for p in prompts], dtype=torch.int64, device=device)

    with torch.inference_mode():
        logits = model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
            logits_to_keep=1, **cache_arg,
        ).logits[:, -1, :]
        while True:
            tokens = choose_next_tokens(
                logits, params.temperature, params.top_p, seeds_t, next_positions, params.greedy
            )
            keep = [row for row, token in enumerate(tokens.tolist()) if not rules.append(progress[live[row]], token)]
            if not keep:
                break
            if len(keep) < len(live):
                # Drop finished rows everywhere, so they stop costing compute.
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                tokens, attention_mask = tokens[index], attention_mask[index]
                seeds_t, next_positions = seeds_t[index], next_positions[index]
                live = [live[row] for row in keep]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(live), 1))], dim=1)
            logits = model(
                input_ids=tokens[:, None], attention_mask=attention_mask, position_ids=next_positions[:, None],
                use_cache=True, logits_to_keep=1, **cache_arg,
            ).logits[:, -1, :]
            next_positions = next_positions + 1
    return [rules.to_generation(p) for p in progress]


def _left_pad(prompts: list[list[int]], pad_token_id: int, device: Any) -> tuple[Any, Any]:
    """Right-align the prompts so every row's next token goes in the same column."""
    import torch

    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.int64)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.int64)
    for row, prompt in enumerate(prompts):
        if prompt:
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.int64)
            attention_mask[row, width - len(prompt) :] = 1
    return input_ids.to(device), attention_mask.to(device)
