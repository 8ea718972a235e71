"""One process of tests/rl/test_joined_generation.py: rollouts that take a different number of generation rounds
per process, through JoinedGeneration, with TRL's server client on the main process only (``server``) or one
colocated engine per process driven as one tensor-parallel group (``tp``). Writes what it got and what its
engine saw to ``OUT/rankN.json``.

    RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p python -m tests.rl.joined_generation_worker server|tp OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace


class EchoClient:
    """TRL's VLLMClient.generate: each completion is its prompt reversed (so a mix-up shows)."""

    def __init__(self) -> None:
        self.calls = []

    def generate(self, prompts, **kwargs):
        self.calls.append([list(p) for p in prompts])
        return {"prompt_ids": prompts, "completion_ids": [list(reversed(p)) for p in prompts], "logprobs": None}


class EchoLLM:
    """vLLM's LLM.generate as the colocate adapter calls it."""

    def __init__(self) -> None:
        self.calls = []
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(hf_config=SimpleNamespace(eos_token_id=None)))

    def generate(self, prompts, params, use_tqdm=False):
        self.calls.append([p["prompt_token_ids"] for p in prompts])
        return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=list(reversed(p["prompt_token_ids"])), finish_reason="length",
                                                         stop_reason=None)]) for p in prompts]


def main(mode: str, out: Path) -> None:
    import torch.distributed as dist

    from harness.models.types import GenerationRequest, SamplingParams
    from harness.rl.trl_vllm import trl_engine
    from tests.models.tiny_models import build_tokenizer

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    if mode == "tp":
        sys.modules.setdefault("vllm", SimpleNamespace(SamplingParams=lambda **kwargs: kwargs))
    engine = EchoClient() if mode == "server" and rank == 0 else EchoLLM() if mode == "tp" else None
    handle = (SimpleNamespace(mode="server", vllm_client=engine) if mode == "server"
              else SimpleNamespace(mode="colocate", llm=engine, tensor_parallel_size=2, tp_group=dist.new_group([0, 1])))
    # Rank 0: one round of two prompts; rank 1: three rounds of one prompt, the last with another token budget.
    rounds = ([[[1, 2, 3], [4, 5]]] if rank == 0 else [[[10, 11]], [[12, 13, 14]], [[15]]])
    got = []
    with trl_engine(handle, build_tokenizer(), rank == 0) as backend:
        for number, prompts in enumerate(rounds):
            params = SamplingParams(max_new_tokens=8 if number < 2 else 4)
            got.append([g.token_ids for g in backend.generate([GenerationRequest(p, seed=7) for p in prompts], params)])
    (out / f"rank{rank}.json").write_text(json.dumps({"got": got, "engine_calls": engine.calls if engine else None}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
