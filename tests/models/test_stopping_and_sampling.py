"""The shortcuts in stop-string matching give the naive answer; the seeded sampler draws from the softmax."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.models.stopping import FinishRules, StopStringMatcher
from harness.models.types import SamplingParams

from .tiny_models import build_tokenizer

TOKENIZER = build_tokenizer()
VOCAB = len(TOKENIZER)
STOPS = ["```output", "\n\n", "π", "≈ 3", " the", "t", "an", "ü"]


def naive_first_stop(ids: list[int], stops: list[str]) -> int | None:
    """Index of the token after which the full decode first contains a stop string."""
    for n in range(1, len(ids) + 1):
        text = TOKENIZER.decode(ids[:n])
        if any(s in text for s in stops):
            return n - 1
    return None


# Random token ids exercise partial UTF-8 bytes; sampled corpus snippets make real stop strings appear.
token_lists = st.one_of(
    st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=40),
    st.sampled_from(["π ≈ 3.14159 then", "```python\nx\n```\n```output\n5", "a\n\nb", "Ünïcödé ∑ the"]).map(
        lambda s: TOKENIZER.encode(s, add_special_tokens=False)
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ids=token_lists, stops=st.lists(st.sampled_from(STOPS), min_size=1, max_size=3, unique=True))
def test_matcher_fires_exactly_where_the_full_decode_first_contains_a_stop(ids, stops):
    matcher = StopStringMatcher(TOKENIZER, stops)
    fired = next((i for i in range(len(ids)) if matcher.match(ids[: i + 1]) is not None), None)
    assert fired == naive_first_stop(ids, stops)


def test_matcher_prefers_the_stop_that_ends_first_then_list_order():
    ids = TOKENIZER.encode("x ```output", add_special_tokens=False)
    prefixes = [ids[: n + 1] for n in range(len(ids))]
    matcher = StopStringMatcher(TOKENIZER, ["```output", "```"])
    assert next(m for p in prefixes if (m := matcher.match(p))) == "```"
    both_complete_together = StopStringMatcher(TOKENIZER, ["put", "output"])
    assert both_complete_together.match(ids) in ("output", "put")
    assert both_complete_together.match(ids) == "put"


def test_finish_rules_order_eos_then_stop_then_length():
    eos = TOKENIZER.convert_tokens_to_ids("<|im_end|>")
    rules = FinishRules(TOKENIZER, SamplingParams(max_new_tokens=3, stop=["b"]), {eos})
    progress = rules.new_progress()
    assert not rules.append(progress, TOKENIZER.encode("a", add_special_tokens=False)[0])
    assert rules.append(progress, eos) and progress.finish_reason == "eos"
    assert rules.to_generation(progress).text == "a"
    progress = rules.new_progress()
    for token in TOKENIZER.encode("aab", add_special_tokens=False)[:3]:
        done = rules.append(progress, token)
    assert done and progress.finish_reason in ("stop", "length")
    ignoring = FinishRules(TOKENIZER, SamplingParams(max_new_tokens=3, stop=[], ignore_eos=True), {eos})
    progress = ignoring.new_progress()
    assert not ignoring.append(progress, eos)


def test_gumbel_noise_is_deterministic_and_standard():
    import torch

    from harness.models.sampling import gumbel_noise

    seeds, positions = torch.tensor([1, 2, 2**40 + 1]), torch.tensor([7, 7, 7])
    noise = gumbel_noise(seeds, positions, 50_000)
    assert torch.equal(noise, gumbel_noise(seeds, positions, 50_000))
    assert not torch.equal(noise[0], noise[1]) and not torch.equal(noise[1], noise[2])
    assert not torch.equal(noise[0], gumbel_noise(seeds, positions + 1, 50_000)[0])
    euler_gamma, std = 0.5772, math.pi / math.sqrt(6)
    assert abs(noise.mean().item() - euler_gamma) < 0.02
    assert abs(noise.std().item() - std) < 0.02
    # Neighbouring vocabulary entries must not be correlated.
    row = noise[0]
    assert abs(torch.corrcoef(torch.stack([row[:-1], row[1:]]))[0, 1].item()) < 0.02


@pytest.mark.parametrize("top_p", [1.0, 0.7])
def test_sampled_frequencies_follow_the_softmax(top_p):
    import torch

    from harness.models.sampling import choose_next_tokens

    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    draws = 20_000
    tokens = choose_next_tokens(
        logits.expand(draws, -1), 1.0, top_p, torch.arange(draws), torch.zeros(draws, dtype=torch.int64), greedy=False
    )
    frequencies = torch.bincount(tokens, minlength=5).float() / draws
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        # The nucleus is the smallest prefix (by probability) whose mass reaches top_p: here tokens 0 and 1.
        assert probs[0] < top_p <= probs[0] + probs[1]
        probs = torch.tensor([probs[0], probs[1], 0, 0, 0]) / (probs[0] + probs[1])
    assert torch.allclose(frequencies, probs, atol=0.015)
