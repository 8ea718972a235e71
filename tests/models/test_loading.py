"""--model strings: parsing and the one-line errors the CLI prints."""

from __future__ import annotations

import importlib.util

import pytest

from harness.models import BackendError, load_backend, parse_model_spec


def test_specs_parse(tmp_path):
    assert parse_model_spec("hf:/models/qwen") == ("hf", "/models/qwen")
    assert parse_model_spec("vllm:Qwen/Qwen2.5-Math-1.5B") == ("vllm", "Qwen/Qwen2.5-Math-1.5B")
    assert parse_model_spec("openai:qwen@http://127.0.0.1:8000/v1") == ("openai", "qwen@http://127.0.0.1:8000/v1")
    assert parse_model_spec("smollm2") == ("smollm2", "")
    assert parse_model_spec(str(tmp_path)) == ("hf", str(tmp_path))


@pytest.mark.parametrize(
    "spec, message",
    [("", "empty model spec"), ("gpt:x", "unknown model spec 'gpt:x'"), ("hf:", "names no model"),
     ("/no/such/folder", "unknown model spec")],
)
def test_bad_specs_are_backend_errors(spec, message):
    with pytest.raises(BackendError, match=message):
        load_backend(spec)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_missing_says_how_to_install(tiny_model_dirs):
    with pytest.raises(BackendError, match="pip install vllm"):
        load_backend(f"vllm:{tiny_model_dirs['llama']}")


def test_importing_the_package_loads_no_heavy_library():
    import subprocess
    import sys

    code = "import sys, harness.models; print(sorted(m for m in ('torch', 'transformers', 'vllm', 'httpx') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
