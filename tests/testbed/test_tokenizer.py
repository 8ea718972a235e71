"""The project's tokenizer: exact round trips, one token per digit, a decision line that is a token prefix,
and a saved folder that AutoTokenizer / AutoModelForCausalLM load unchanged."""

from __future__ import annotations

import pytest

from harness.testbed.tokenizer import build_tokenizer

TEXTS = [
    "What is 48213 * 90715?",
    "Let's write a program.\n```python\nprint(pow(37, 123, 101))\n```\n```output",
    "\n4373642295\n```\n",
    "Tabs\tand  double  spaces, unicode: é ≤ π 漢字, emoji 🙂, and a trailing newline\n",
    "The answer is \\boxed{-17}.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_each_digit_is_its_own_token(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer.encode("x 90715 y", add_special_tokens=False))
    assert [t for t in tokens if any(ch.isdigit() for ch in t)] == list("90715")


def test_the_decision_line_is_a_prefix_of_the_response_tokens(tokenizer):
    for opening in ("Let's write a program.\n", "Let's reason step by step.\n"):
        head = tokenizer.encode(opening, add_special_tokens=False)
        whole = tokenizer.encode(opening + "12 + 5 = 17.\nThe answer is \\boxed{17}.", add_special_tokens=False)
        assert whole[: len(head)] == head


def test_chat_template_and_special_tokens(tokenizer):
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 2
    assert tokenizer.eos_token == "<|im_end|>"
    assert len(tokenizer.encode(prompt, add_special_tokens=False)) < 20  # short sequences: words merge, digits do not


def test_saved_model_folder_loads_with_auto_classes(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.testbed.model_init import write_tiny_model

    summary = write_tiny_model(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tiny")
    assert 0.8e6 < summary["parameters"] < 10e6
    assert model.config.vocab_size == len(loaded) and model.config.eos_token_id == loaded.eos_token_id
    for text in TEXTS:
        assert loaded.decode(loaded.encode(text, add_special_tokens=False)) == text
    assert loaded.convert_ids_to_tokens(loaded.encode("90715", add_special_tokens=False)) == list("90715")
