"""Our model-backend interface over the vLLM engine TRL's GRPOTrainer runs (``use_vllm``), so train-rl's
rollouts keep running in our RolloutEngine (code cells executed in our sandbox between generation rounds)
while the tokens come from vLLM.

- colocate: TRL holds a ``vllm.LLM`` in each training process (``vllm_generation.llm``); the backend is
  ``VLLMBackend``'s own generate (one request per trajectory, per-request seeds, stop at ```output) on it.
- server: TRL holds a client of ``trl vllm-serve`` (``vllm_generation.vllm_client``); one batched request
  per round. The server samples with one set of parameters per call, so rollouts are not seeded per row,
  and a finish reason is inferred from the tokens (the server does not return one).

Two cases need every process in each generation call, which our rollouts do not give for free: each process
runs its own number of rounds (answers end at different times, tool rounds differ). In server mode TRL gives
the client to the main process only, and with colocated tensor parallelism (``vllm_tensor_parallel_size`` >
1) the processes of a group drive one SPMD engine and must feed it the same prompts. ``JoinedGeneration``
makes each call a collective: the processes exchange their requests, the union is generated (by the main
process's client, or by every engine of the TP group on the same prompts and seeds), each keeps its own;
a process whose rollouts are done keeps joining with no requests (``finish``) until every one is done.

TRL keeps the engine's weights in step with the policy (``sync_weights`` before each rollout). With
``vllm_enable_sleep_mode`` the engine sleeps between rollouts (level 2: weights and KV cache released);
TRL's own ``generate`` wakes it, which our rollouts bypass, so ``trl_engine`` re-pushes weights the engine
discarded, wakes the KV cache, and puts the engine back to sleep afterwards, as TRL does.

Tested against fakes with vLLM's and TRL's APIs (tests/rl/test_trl_vllm.py, two gloo processes in
tests/rl/test_joined_generation.py): no GPU run has exercised these paths here.
"""

from __future__ import annotations

from contextlib import contextmanager

from harness.models.stopping import eos_token_ids_of, finished_generation
from harness.models.types import Generation, GenerationRequest, ModelBackend, SamplingParams
from harness.models.vllm_backend import VLLMBackend


def backend_from_trl(vllm_generation, tokenizer, is_main_process: bool = True, eos_token_ids: set[int] | None = None) -> ModelBackend:
    """``eos_token_ids``: the model's own end tokens (its generation config), which the server stops on too."""
    if getattr(vllm_generation, "mode", None) == "server":
        server = TRLServerBackend(vllm_generation.vllm_client, tokenizer, eos_token_ids=eos_token_ids) if is_main_process else None
        return JoinedGeneration(server, tokenizer, group=None, main_generates=True)
    colocated = TRLColocateBackend(vllm_generation.llm, tokenizer)
    if getattr(vllm_generation, "tensor_parallel_size", 1) > 1:
        return JoinedGeneration(colocated, tokenizer, group=vllm_generation.tp_group, main_generates=False)
    return colocated


@contextmanager
def trl_engine(vllm_generation, tokenizer, is_main_process: bool, eos_token_ids: set[int] | None = None):
    """The backend on TRL's engine for one rollout call; every process enters and leaves it together."""
    sleeps = getattr(vllm_generation, "mode", None) == "colocate" and getattr(vllm_generation, "enable_sleep_mode", False)
    if sleeps:
        if vllm_generation._llm_weights_sleeping:  # level-2 sleep discarded them since the last sync
            vllm_generation.sync_weights()
        vllm_generation.llm.wake_up(tags=["kv_cache"])
    backend = backend_from_trl(vllm_generation, tokenizer, is_main_process, eos_token_ids)
    try:
        yield backend
        if isinstance(backend, JoinedGeneration):
            backend.finish()
    finally:
        if sleeps:
            vllm_generation.llm.sleep(level=2)
            vllm_generation._llm_weights_sleeping = True


class JoinedGeneration(ModelBackend):
    """Generation calls that every process of ``group`` (None: all of them) joins; see the module docstring.
    ``generator`` is the backend that generates the union: on the main process only (``main_generates``,
    whose outputs are then broadcast), or on every process of the group with the same inputs."""

    def __init__(self, generator: ModelBackend | None, tokenizer, group, main_generates: bool, name: str = "policy") -> None:
        self.generator, self.tokenizer, self.group, self.main_generates, self.name = generator, tokenizer, group, main_generates, name
        self.eos_token_ids = eos_token_ids_of(None, None, tokenizer)
        self.context_length = None

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        return self._round(list(requests), params, done=False)

    def finish(self) -> None:
        """Join the others' rounds with no requests until every process is done."""
        while self._round([], None, done=True) is not None:
            pass

    def _round(self, requests: list[GenerationRequest], params: SamplingParams | None, done: bool) -> list[Generation] | None:
        """One collective round; this process's generations, or None when every process was done."""
        import torch.distributed as dist

        if not dist.is_initialized():  # one process (one GPU trains, the server generates): nobody to join
            return None if done else self.generator.generate(requests, params)
        size = dist.get_world_size(self.group)
        everyone: list = [None] * size
        dist.all_gather_object(everyone, (requests, params, done), group=self.group)
        if all(part[2] for part in everyone):
            return None
        outputs = self._generate_union(everyone) if self.generator is not None else None
        if self.main_generates:
            box = [outputs]
            dist.broadcast_object_list(box, src=0, group=self.group)
            outputs = box[0]
        mine = dist.get_rank(self.group)
        return outputs[mine] if not done else []

    def _generate_union(self, everyone: list) -> list[list[Generation]]:
        """Every process's requests generated, grouped by sampling parameters (rounds differ in their token
        budget); the generations per process, in its request order."""
        outputs: list[list] = [[None] * len(part[0]) for part in everyone]
        distinct = []
        for part in everyone:
            if part[0] and part[1] not in distinct:
                distinct.append(part[1])
        for params in distinct:
            places = [(p, i) for p, part in enumerate(everyone) if part[1] == params for i in range(len(part[0]))]
            generated = self.generator.generate([everyone[p][0][i] for p, i in places], params)
            for (p, i), generation in zip(places, generated):
                outputs[p][i] = generation
        return outputs


class TRLColocateBackend(VLLMBackend):
    """VLLMBackend on an engine TRL built and owns (never closed here)."""

    def __init__(self, llm, tokenizer, name: str = "policy") -> None:
        self.llm, self.tokenizer, self.name = llm, tokenizer, name
        self.eos_token_ids = eos_token_ids_of(None, None, tokenizer) | self._engine_eos_ids()
        self.context_length = None

    def close(self) -> None:
        pass


class TRLServerBackend(ModelBackend):
    """``eos_token_ids``: the ids the server stops on, when the model's generation config adds some to the
    tokenizer's (Qwen's two end tokens); a completion ending on one of them ended the turn."""

    def __init__(self, client, tokenizer, name: str = "policy", eos_token_ids: set[int] | None = None) -> None:
        self.client, self.tokenizer, self.name = client, tokenizer, name
        self.eos_token_ids = eos_token_ids_of(None, None, tokenizer) | set(eos_token_ids or ())

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
