"""Tiny random models built on the spot (no download): a byte-level BPE tokenizer trained on a few lines
of math text, and Llama / Qwen2 configs with two small layers. Saved to folders so the backends load them
exactly as they would load a real checkpoint."""

from __future__ import annotations

CORPUS = [
    "Let x be the number of apples. Then 3x + 5 = 20, so x = 5.",
    "```python\nprint(2 + 3)\n```\n```output\n5\n```\nThe answer is \\boxed{5}.",
    "We compute 12 * 7 = 84 and 84 / 4 = 21. Therefore the answer is 21.",
    "Solve for y: y^2 - 4 = 0 gives y = 2 or y = -2.",
    "The sum of the first n odd numbers is n^2. Ünïcödé ∑ π ≈ 3.14159.",
]
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(chat_template: str | None = CHAT_TEMPLATE):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    raw.train_from_iterator(CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def build_model(kind: str, tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    shape = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**shape))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**shape, use_sliding_window=False))
    # Larger than default weights make the random model's choices depend strongly on context,
    # so equivalence tests compare informative outputs rather than one token repeated.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.25)
    return model.eval()
