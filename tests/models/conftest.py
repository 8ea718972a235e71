"""Fixtures for the model backend tests. Nothing here touches the network: the hub is unreachable."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from .tiny_models import build_model, build_tokenizer  # noqa: E402  (after the offline switches)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    """Folders holding a tiny Llama and a tiny Qwen2 with the same tokenizer: {"llama": path, "qwen2": path}."""
    tokenizer = build_tokenizer()
    dirs = {}
    for kind in ("llama", "qwen2"):
        folder = tmp_path_factory.mktemp(f"tiny-{kind}")
        build_model(kind, tokenizer).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        dirs[kind] = str(folder)
    return dirs


@pytest.fixture(scope="session")
def tiny_llama(tiny_model_dirs):
    from harness.models import load_backend

    return load_backend(f"hf:{tiny_model_dirs['llama']}", model_args={"device": "cpu"})
