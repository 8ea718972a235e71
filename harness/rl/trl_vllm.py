"""Our model-backend interface over the vLLM engine TRL's GRPOTrainer runs (``use_vllm``), so train-rl's
rollouts keep running in our RolloutEngine (code cells executed in our sandbox between generation rounds)
while the tokens come from vLLM.

- colocate: TRL holds a ``vllm.LLM`` in each training process (``vllm_generation.llm``); the backend is
  ``VLLMBackend``'s own generate (one request per trajectory, per-request seeds, stop at ```output) on it.
- server: TRL holds a client of ``trl vllm-serve`` (``vllm_generation.vllm_client``); one batched request
  per round. The server samples with one set of parameters per call, so rollouts are not seeded per row,
  and a finish reason is inferred from the tokens (the server does not return one).

TRL keeps the engine's weights in step with the policy (``sync_weights`` before each rollout); this module
only generates. Both modes are tested against fakes with vLLM's APIs (tests/rl/test_trl_vllm.py):
no GPU run has exercised them here.
"""

from __future__ import annotations

from harness.models.stopping import eos_token_ids_of, finished_generation
from harness.models.types import Generation, GenerationRequest, ModelBackend, SamplingParams
from harness.models.vllm_backend import VLLMBackend


def backend_from_trl(vllm_generation, tokenizer) -> ModelBackend:
    if getattr(vllm_generation, "mode", None) == "server":
        return TRLServerBackend(vllm_generation.vllm_client, tokenizer)
    return TRLColocateBackend(vllm_generation.llm, tokenizer)


class TRLColocateBackend(VLLMBackend):
    """VLLMBackend on an engine TRL built and owns (never closed here)."""

    def __init__(self, llm, tokenizer, name: str = "policy") -> None:
        self.llm, self.tokenizer, self.name = llm, tokenizer, name
        self.eos_token_ids = eos_token_ids_of(None, None, tokenizer) | self._engine_eos_ids()
        self.context_length = None

    def close(self) -> None:
        pass


class TRLServerBackend(ModelBackend):
    def __init__(self, client, tokenizer, name: str = "policy") -> None:
        self.client, self.tokenizer, self.name = client, tokenizer, name
        self.eos_token_ids = eos_token_ids_of(None, None, tokenizer)

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        if not requests:
            return []
        extra = {"stop": list(params.stop) or None, "include_stop_str_in_output": True, "skip_special_tokens": False,
                 "ignore_eos": params.ignore_eos}
        output = self.client.generate(prompts=[list(r.prompt_ids) for r in requests], n=1, temperature=params.temperature,
                                      top_p=params.top_p, max_tokens=params.max_new_tokens, logprobs=None,
                                      generation_kwargs=extra)
        return [self._finished(list(ids), params) for ids in output["completion_ids"]]

    def _finished(self, ids: list[int], params: SamplingParams) -> Generation:
        if ids and ids[-1] in self.eos_token_ids:
            return finished_generation(self.tokenizer, ids, "eos", None)
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        stop = next((s for s in params.stop if text.endswith(s)), None)
        if stop is not None:
            return finished_generation(self.tokenizer, ids, "stop", stop)
        return finished_generation(self.tokenizer, ids, "length", None)
