"""Tiny Llama-architecture models with the project's own tokenizer, written as a loadable folder.

``AutoModelForCausalLM`` / ``AutoTokenizer`` load the folder like any Hugging Face checkpoint, so
eval (``--model hf:DIR``), the SFT trainer and later RL/EM trainers run the same code paths on a
model that trains on a CPU in minutes. Weights are random (seeded); nothing is downloaded.

Llama rather than Qwen2: transformers 5 loads any folder whose config says ``qwen2`` with its own
Qwen2 tokenizer class, which replaces our pre-tokenizer (digits would no longer be split); for
``llama`` it keeps the tokenizer.json as written.
"""

from __future__ import annotations

from pathlib import Path

# Sizes are chosen for CPU speed: at ~1M parameters a training step on 2 cores takes tens of milliseconds.
PRESETS = {
    "tiny": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 384},
    "small": {"hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 8, "num_key_value_heads": 4, "intermediate_size": 768},
}


def init_model(preset: str, tokenizer, seed: int = 0, max_positions: int = 512):
    """A randomly initialised LlamaForCausalLM sized by ``preset``, its vocabulary that of ``tokenizer``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,  # at this size the embedding is a large share of the parameters
        bos_token_id=None,
        eos_token_id=eos,
        pad_token_id=pad,
        **PRESETS[preset],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    return model


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def write_tiny_model(output: Path, preset: str = "tiny", seed: int = 0, vocab_size: int = 1024) -> dict:
    """Train the tokenizer, initialise the model, save both to ``output``; returns a summary."""
    from harness.testbed.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(vocab_size=vocab_size, seed=seed)
    model = init_model(preset, tokenizer, seed=seed)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    return {"path": str(output), "preset": preset, "parameters": parameter_count(model), "vocab": len(tokenizer)}
