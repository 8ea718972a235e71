"""The slot engine run eagerly (the CPU default): same greedy tokens whatever the batch and order, and no
compute spent on finished sequences, idle slots at the edges or unwritten cache positions."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from harness.models import GenerationRequest, SamplingParams, load_backend
from harness.models.hf import _choose_engine
from tests.models.test_hf_backend import PROMPTS as HF_BACKEND_PROMPTS

PROMPTS = [*HF_BACKEND_PROMPTS, "A train leaves at 3 pm and", "1, 1, 2, 3, 5, 8,"]
GREEDY = SamplingParams(max_new_tokens=14, stop=["\n\n"])


@pytest.fixture(scope="module")
def backend(tiny_model_dirs):
    return load_backend(f"hf:{tiny_model_dirs['llama']}", model_args={"device": "cpu"})


def requests_for(backend, prompts=PROMPTS):
    return [GenerationRequest(backend.encode(p)) for p in prompts]


def generate(backend, engine, batch_size, requests, params=GREEDY):
    backend.engine, backend.batch_size, backend._slot_decoder = engine, batch_size, None
    return backend.generate(requests, params)


def forward_inputs(model):
    """Record (input_ids shape, attention mask shape) of every forward call of ``model``."""
    calls = []
    handle = model.register_forward_pre_hook(
        lambda _, args, kwargs: calls.append((tuple(kwargs["input_ids"].shape), tuple(kwargs["attention_mask"].shape))),
        with_kwargs=True,
    )
    return calls, handle


def test_cpu_picks_slots_where_the_slot_cache_works():
    full = SimpleNamespace(layer_types=["full_attention"] * 2)
    sliding = SimpleNamespace(layer_types=["full_attention", "sliding_attention"])
    assert _choose_engine("auto", full, "sdpa") == "slots"
    assert _choose_engine("auto", sliding, "sdpa") == "simple"
    assert _choose_engine("auto", full, "flash_attention_2") == "simple"
    assert _choose_engine("simple", full, "sdpa") == "simple"


def test_greedy_tokens_are_the_same_for_every_engine_batch_size_and_order(backend):
    requests = requests_for(backend)
    reference = [g.token_ids for g in generate(backend, "simple", 1, requests)]
    order = list(range(len(requests)))
    random.Random(0).shuffle(order)
    for engine in ("simple", "slots"):
        for batch_size in (1, 2, 3, 8):
            assert [g.token_ids for g in generate(backend, engine, batch_size, requests)] == reference
            shuffled = generate(backend, engine, batch_size, [requests[i] for i in order])
            assert [g.token_ids for g in shuffled] == [reference[i] for i in order]
    assert len({tuple(t) for t in reference}) == len(PROMPTS)


def test_no_forward_pass_is_spent_after_a_sequence_finishes(backend):
    # One slot: the prefill gives each request its first token and every decode step one more, so a
    # forward call that produced no kept token would show up as one call too many.
    requests = requests_for(backend)
    calls, handle = forward_inputs(backend.model)
    try:
        generations = generate(backend, "slots", 1, requests)
    finally:
        handle.remove()
    assert len(calls) == sum(len(g.token_ids) for g in generations)


def test_prompts_prefilled_together_are_the_shortest_first(backend):
    requests = requests_for(backend)
    calls, handle = forward_inputs(backend.model)
    try:
        generate(backend, "slots", 3, requests)
    finally:
        handle.remove()
    lengths = sorted(len(r.prompt_ids) for r in requests)
    first_prefill = calls[0][0]
    assert first_prefill == (3, lengths[2])


def test_decode_steps_attend_only_to_positions_written_so_far(backend):
    [request] = requests_for(backend, PROMPTS[:1])
    params = SamplingParams(max_new_tokens=6, stop=[], ignore_eos=True)
    calls, handle = forward_inputs(backend.model)
    try:
        generate(backend, "slots", 1, [request], params)
    finally:
        handle.remove()
    decode_masks = [mask for ids, mask in calls if ids[1] == 1]
    # Step k writes position len(prompt) + k - 1 and sees everything up to it; nothing of the preallocated rest.
    assert [mask[-1] for mask in decode_masks] == [len(request.prompt_ids) + k for k in range(1, 6)]


def test_a_decode_window_writes_into_its_own_slots_only():
    import torch

    from harness.models.slot_kv_cache import SlotKVCache

    positions = torch.tensor([0, 2, 3, 0])
    cache = SlotKVCache(num_slots=4, max_len=8, write_positions=positions)
    cache.update(torch.zeros(4, 1, 1, 2), torch.zeros(4, 1, 1, 2), 0)  # allocates the layer
    new = torch.ones(2, 1, 1, 2)
    with cache.decoding(slice(1, 3), length=4):
        keys, values = cache.update(new, 2 * new, 0)
    assert keys.shape == values.shape == (2, 1, 4, 2)
    assert cache.keys[0][1, 0, 2].tolist() == [1.0, 1.0] and cache.values[0][2, 0, 3].tolist() == [2.0, 2.0]
    written = (cache.keys[0] != 0).any(-1).nonzero().tolist()
    assert written == [[1, 0, 2], [2, 0, 3]]
