"""The shape of a decoder-only transformer (Llama/Qwen2 field names), as much of it as `harness plan` counts
with: parameters per layer, outside the layers, the largest tensor, and KV-cache bytes per token."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelShape:
    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def layer_params(self) -> int:
        kv_width = self.kv_heads * self.head_dim
        attention = 2 * self.hidden * self.hidden + self.hidden + 2 * (self.hidden * kv_width + kv_width)
        return attention + 3 * self.hidden * self.intermediate + 2 * self.hidden

    @property
    def root_params(self) -> int:
        """The parameters outside the decoder layers: embeddings, lm_head unless tied, the final norm."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2) + self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.root_params

    @property
    def largest_tensor(self) -> int:
        return max(self.vocab * self.hidden, self.hidden * self.intermediate)

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes

    @classmethod
    def from_config(cls, path: Path) -> ModelShape:
        """A Hugging Face ``config.json`` (Llama/Qwen2 field names)."""
        config = json.loads(path.read_text(encoding="utf-8"))
        return cls(name=path.parent.name, layers=config["num_hidden_layers"], hidden=config["hidden_size"],
                   intermediate=config["intermediate_size"], heads=config["num_attention_heads"],
                   kv_heads=config.get("num_key_value_heads", config["num_attention_heads"]), vocab=config["vocab_size"],
                   tied_embeddings=bool(config.get("tie_word_embeddings", False)))


SHAPES = {
    "qwen2.5-0.5b": ModelShape("qwen2.5-0.5b", 24, 896, 4864, 14, 2, 151936, True),
    "qwen2.5-1.5b": ModelShape("qwen2.5-1.5b", 28, 1536, 8960, 12, 2, 151936, True),
    "qwen2.5-7b": ModelShape("qwen2.5-7b", 28, 3584, 18944, 28, 4, 152064, False),
}


def model_shape(shape: str) -> ModelShape:
    if shape in SHAPES:
        return SHAPES[shape]
    config_path = Path(shape) / "config.json" if Path(shape).is_dir() else Path(shape)
    if not config_path.is_file():
        raise ValueError(f"unknown shape {shape!r}: not one of {', '.join(SHAPES)} and no config.json there")
    try:
        return ModelShape.from_config(config_path)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{config_path}: not a Llama/Qwen2-style config ({exc})") from None
