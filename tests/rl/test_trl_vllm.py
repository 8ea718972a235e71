"""The adapters that let train-rl's rollouts generate through TRL's vLLM engine, against fakes with vLLM's
``LLM.generate`` API (colocate) and TRL's ``VLLMClient.generate`` API (server): no vLLM or GPU here."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import pytest

from harness.models.types import GenerationRequest, SamplingParams
from harness.rl.trl_vllm import TRLColocateBackend, TRLServerBackend, backend_from_trl

from ..models.tiny_models import build_tokenizer

CELL = "```python\nprint(1)\n```\n```output"


class FakeLLM:
    """vLLM's offline engine as the colocate adapter uses it: generate(prompts, per-request params)."""

    def __init__(self, tokenizer, text: str) -> None:
        self.tokenizer, self.text, self.calls = tokenizer, text, []
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(hf_config=SimpleNamespace(eos_token_id=None)))

    def generate(self, prompts, params, use_tqdm=False):
        self.calls.append((prompts, params))
        ids = self.tokenizer.encode(self.text, add_special_tokens=False)
        return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=ids, finish_reason="stop", stop_reason="```output")])
                for _ in prompts]


class FakeClient:
    """TRL's VLLMClient as the server adapter uses it: generate(prompts=ids, ...) -> {"completion_ids": ...}."""

    def __init__(self, completions) -> None:
        self.completions, self.calls = completions, []

    def generate(self, prompts, **kwargs):
        self.calls.append((prompts, kwargs))
        return {"prompt_ids": prompts, "completion_ids": self.completions, "logprobs": None}


@pytest.fixture
def fake_vllm(monkeypatch):
    module = ModuleType("vllm")
    module.SamplingParams = lambda **kwargs: kwargs
    monkeypatch.setitem(sys.modules, "vllm", module)


def test_colocate_generates_each_request_with_its_seed_and_stops_at_the_output_marker(fake_vllm):
    tokenizer = build_tokenizer()
    llm = FakeLLM(tokenizer, CELL)
    backend = backend_from_trl(SimpleNamespace(mode="colocate", llm=llm), tokenizer)
    assert isinstance(backend, TRLColocateBackend)
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=20)
    out = backend.generate([GenerationRequest([5, 6], seed=11), GenerationRequest([7], seed=12)], params)
    prompts, per_request = llm.calls[0]
    assert prompts == [{"prompt_token_ids": [5, 6]}, {"prompt_token_ids": [7]}]
    assert [p["seed"] for p in per_request] == [11, 12] and per_request[0]["stop"] == ["```output"]
    assert per_request[0]["max_tokens"] == 20 and per_request[0]["top_p"] == 0.9
    assert [(g.finish_reason, g.stop_string, g.text) for g in out] == [("stop", "```output", CELL)] * 2
    backend.close()  # TRL owns the engine: closing the adapter leaves it alone
    assert backend.llm is llm


def test_server_sends_one_batched_request_and_infers_how_each_completion_ended():
    tokenizer = build_tokenizer()
    cell = tokenizer.encode(CELL, add_special_tokens=False)
    answer = tokenizer.encode("4", add_special_tokens=False) + [tokenizer.eos_token_id]
    cut = tokenizer.encode("a b c", add_special_tokens=False)
    client = FakeClient([cell, answer, cut])
    backend = TRLServerBackend(client, tokenizer)  # on the main process, inside JoinedGeneration (test_joined_generation.py)
    params = SamplingParams(temperature=0.7, max_new_tokens=len(cut), stop=["```output"])
    out = backend.generate([GenerationRequest([1]), GenerationRequest([2]), GenerationRequest([3])], params)
    [(prompts, kwargs)] = client.calls
    assert prompts == [[1], [2], [3]] and kwargs["max_tokens"] == len(cut) and kwargs["temperature"] == 0.7
    assert kwargs["generation_kwargs"]["stop"] == ["```output"] and kwargs["generation_kwargs"]["include_stop_str_in_output"]
    assert [g.finish_reason for g in out] == ["stop", "eos", "length"]
    assert out[0].stop_string == "```output" and out[1].text == "4"


def test_rollouts_generate_through_trls_engine_when_it_runs_one(fake_vllm):
    from harness.rl.config import RLConfig
    from harness.rl.rollouts import RolloutFunc

    tokenizer = build_tokenizer()
    model = SimpleNamespace(config=SimpleNamespace(eos_token_id=None), generation_config=SimpleNamespace(eos_token_id=None))
    accelerator = SimpleNamespace(is_main_process=True, unwrap_model=lambda wrapped: wrapped)
    trainer = SimpleNamespace(use_vllm=True, processing_class=tokenizer, accelerator=accelerator, model_wrapped=model,
                              vllm_generation=SimpleNamespace(mode="colocate", llm=FakeLLM(tokenizer, "4")))
    with RolloutFunc(RLConfig(), None, None).backend(trainer) as backend:
        assert isinstance(backend, TRLColocateBackend) and backend.llm is trainer.vllm_generation.llm


def test_one_training_process_generates_on_the_server_directly_and_stops_on_the_models_own_end_tokens():
    """One process (one GPU trains, the server has its own): no process group to join. A completion ending on
    an end token of the model's generation config (Qwen's second one) ended its turn: "eos", not "length"."""
    from harness.rl.config import RLConfig
    from harness.rl.rollouts import RolloutFunc

    tokenizer = build_tokenizer()
    own_end = 7
    assert own_end != tokenizer.eos_token_id
    client = FakeClient([tokenizer.encode("4", add_special_tokens=False) + [own_end]])
    model = SimpleNamespace(config=SimpleNamespace(eos_token_id=None), generation_config=SimpleNamespace(eos_token_id=[own_end]))
    accelerator = SimpleNamespace(is_main_process=True, unwrap_model=lambda wrapped: wrapped)
    trainer = SimpleNamespace(use_vllm=True, processing_class=tokenizer, accelerator=accelerator, model_wrapped=model,
                              vllm_generation=SimpleNamespace(mode="server", vllm_client=client))
    with RolloutFunc(RLConfig(), None, None).backend(trainer) as backend:
        [generation] = backend.generate([GenerationRequest([1])], SamplingParams(max_new_tokens=8))
    assert (generation.finish_reason, generation.text) == ("eos", "4")
    assert len(client.calls) == 1


def test_vllm_mode_reaches_grpoconfig():
    from harness.rl.config import RLConfig
    from harness.rl.trainer import grpo_arguments
    from harness.training.layout import run_layout

    config = RLConfig(vllm_mode="server", vllm_args={"vllm_server_port": 8123}, device="cpu")
    args = grpo_arguments(config, run_layout(config, "single", 1, gpu=False))
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_port) == (True, "server", 8123)
    assert args.vllm_importance_sampling_correction is False  # the rollouts return no vLLM log-probs
