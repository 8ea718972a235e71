"""Prompts over a model's context are refused, the huge ones by their length before any tokenizing."""

from __future__ import annotations

import pytest

from harness.models import ModelBackend, PromptTooLongError


class CountingTokenizer:
    """Two characters per token; its longest vocabulary entry is three characters."""

    def __init__(self) -> None:
        self.encoded_chars = 0

    def get_vocab(self) -> dict[str, int]:
        return {"a": 0, "ab": 1, "abc": 2}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        self.encoded_chars += len(text)
        return [1] * ((len(text) + 1) // 2)


class Backend(ModelBackend):
    name = "counting"

    def __init__(self, context_length: int | None) -> None:
        self.tokenizer, self.context_length = CountingTokenizer(), context_length


def test_a_prompt_that_fits_is_encoded():
    backend = Backend(context_length=10)
    assert backend.encode_prompt("x" * 18) == [1] * 9


def test_a_prompt_filling_the_context_is_refused_after_counting_its_tokens():
    backend = Backend(context_length=10)
    with pytest.raises(PromptTooLongError, match="20 tokens fills the model's 10-token context"):
        backend.encode_prompt("x" * 40)


def test_a_huge_prompt_is_refused_without_tokenizing_it():
    backend = Backend(context_length=10)
    with pytest.raises(PromptTooLongError, match="5000000 characters"):
        backend.encode_prompt("x" * 5_000_000)
    assert backend.tokenizer.encoded_chars == 0


def test_an_unknown_context_refuses_nothing():
    assert len(Backend(context_length=None).encode_prompt("x" * 1000)) == 500


def test_hf_backends_know_their_context(tiny_llama):
    assert tiny_llama.context_length == tiny_llama.model.config.max_position_embeddings > 0
