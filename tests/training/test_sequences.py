"""Sequences for training: pieces tokenized as eval tokenizes them, tool tokens masked, labels shifted."""

from __future__ import annotations

import pytest

from harness.testbed.tokenizer import build_tokenizer
from harness.training.sequences import (
    IGNORE_INDEX,
    collate,
    encode_example,
    example_from_ids,
)

ROW = {
    "messages": [{"role": "user", "content": "What is 12345 * 678?"}],
    "segments": [
        {"kind": "model", "text": "Let's write a program.\n```python\nprint(12345 * 678)\n```\n```output"},
        {"kind": "tool", "text": "\n8369910\n```\n"},
        {"kind": "model", "text": "The answer is \\boxed{8369910}."},
    ],
}


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_pieces_are_tokenized_separately_and_only_model_tokens_are_learned(tokenizer):
    example = encode_example(tokenizer, ROW)
    prompt = tokenizer.encode(tokenizer.apply_chat_template(ROW["messages"], tokenize=False, add_generation_prompt=True),
                              add_special_tokens=False)
    pieces = [tokenizer.encode(s["text"], add_special_tokens=False) for s in ROW["segments"]]
    assert example.input_ids == prompt + pieces[0] + pieces[1] + pieces[2] + [tokenizer.eos_token_id]
    assert example.loss_mask == [0] * len(prompt) + [1] * len(pieces[0]) + [0] * len(pieces[1]) + [1] * len(pieces[2]) + [1]


def test_plain_prompt_and_response_and_unfinished_rows(tokenizer):
    example = encode_example(tokenizer, {"prompt": "Q: 2+2?\nA:", "response": " 4", "finished": False})
    assert example.input_ids[-1] != tokenizer.eos_token_id
    assert sum(example.loss_mask) == len(tokenizer.encode(" 4", add_special_tokens=False))


@pytest.mark.parametrize("row, message", [
    ({"segments": []}, "'prompt'"),
    ({"prompt": "x"}, "'segments' or 'response'"),
    ({"prompt": "x", "segments": [{"kind": "user", "text": "y"}]}, "segment kind"),
])
def test_malformed_rows_are_refused(tokenizer, row, message):
    with pytest.raises(ValueError, match=message):
        encode_example(tokenizer, row)


def test_collate_pads_right_and_labels_are_the_next_learned_token():
    a = example_from_ids([5, 6], [7, 8, 9], [1, 0, 1])
    b = example_from_ids([5], [7], [1])
    batch = collate([a, b], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [5, 7, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    i = IGNORE_INDEX
    assert batch["labels"].tolist() == [[i, 7, i, 9, i], [7, i, i, i, i]]
    assert collate([a], pad_token_id=0, max_length=3)["input_ids"].tolist() == [[5, 6, 7]]
