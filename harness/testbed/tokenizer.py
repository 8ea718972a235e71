"""A small tokenizer made by the project: byte-level BPE with every digit its own token, and a chat template.

Byte-level means any text round-trips exactly (code, tool output, newlines). Splitting digits
keeps numbers aligned digit by digit, which is what lets a tiny model add and copy them; the BPE
merges then shrink the fixed words (prompts, "The answer is", code fences) to a few tokens each,
so a whole arith conversation is a few dozen tokens, not hundreds of characters.
"""

from __future__ import annotations

from pathlib import Path

END_OF_TEXT = "<|endoftext|>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"
SPECIAL_TOKENS = (END_OF_TEXT, TURN_START, TURN_END)

# ChatML, as Qwen models use it: the assistant's reply ends with <|im_end|>, which is the EOS token.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_tokenizer(texts: list[str], vocab_size: int = 1024):
    """A ``PreTrainedTokenizerFast`` trained on ``texts``; ``AutoTokenizer`` loads what it saves."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # A token never spans a line end, so an opening line such as "Let's write a program.\n" stays a
            # prefix of the tokens that follow it, and a trainer can force the decision by its text.
            pre_tokenizers.Split("\n", behavior="merged_with_previous"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=TURN_END,
        pad_token=END_OF_TEXT,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )


def corpus_for_tokenizer(size: int = 3000, seed: int = 0) -> list[str]:
    """The pieces eval and training tokenize on their own: each turn of every method's prompt, each
    response segment of both styles (special tokens are left out: they are never merged)."""
    from harness.testbed.demos import demonstration_rows

    texts = []
    for row in demonstration_rows(size=size, seed=seed, code_ratio=0.5, forced_share=0.5):
        texts.append("assistant\n")  # the generation prompt's turn header
        texts.extend(f"{message['role']}\n{message['content']}" for message in row["messages"])
        texts.extend(segment["text"] for segment in row["segments"])
    return texts


def build_tokenizer(vocab_size: int = 1024, seed: int = 0):
    return train_tokenizer(corpus_for_tokenizer(seed=seed), vocab_size=vocab_size)


def save_tokenizer(tokenizer, directory: Path) -> None:
    tokenizer.save_pretrained(str(directory))
