"""Model backends: turn prompt token ids into generated token ids (see ``types.py`` for the exact rules).

``load_backend("hf:PATH" | "vllm:NAME" | "openai:MODEL@URL" | "smollm2", model_args)`` returns a
``ModelBackend``. Importing this package is cheap; torch, transformers and vllm load inside ``load_backend``.
"""

from harness.models.loading import load_backend, parse_model_spec
from harness.models.types import (
    BackendError,
    FinishReason,
    Generation,
    GenerationRequest,
    ModelBackend,
    PromptTooLongError,
    SamplingParams,
)

__all__ = [
    "BackendError",
    "FinishReason",
    "Generation",
    "GenerationRequest",
    "ModelBackend",
    "PromptTooLongError",
    "SamplingParams",
    "load_backend",
    "parse_model_spec",
]
