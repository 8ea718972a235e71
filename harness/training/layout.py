"""How a train-em or train-rl run is laid out, decided once from its config and its launch: the trainers
build their run from it and `harness plan` sizes the same run from it, so the two cannot disagree.

* **strategy**: ``fsdp`` when the launch config asks for it (accelerate turns FSDP on at any process
  count), else ``ddp`` over several processes, else ``single``.
* **rollout**: where the rollouts are generated. ``hf``: the policy itself (train-em ``rollout_backend:
  hf``, train-rl ``vllm_mode: off``); ``vllm-colocate``: a vLLM engine in each training process
  (train-em ``rollout_backend: vllm``, train-rl ``vllm_mode: colocate``); ``vllm-server``: a vLLM
  server on other GPUs, fed the weights through TRL's client (train-em ``rollout_backend: vllm-server``,
  train-rl ``vllm_mode: server``); its dtype and tensor parallelism are the server's own launch flags.
* **compute and weight dtypes**: compute is bf16 for ``dtype: bfloat16`` or ``auto`` on a GPU
  (policy.mixed_precision); the weights are fp32 masters, except train-rl's ``dtype: bfloat16``, which
  loads them in bf16.
* **vllm_memory_share**: the share of each training GPU a colocated engine takes (train-em's
  ``vllm_gpu_memory_utilization``; train-rl's ``vllm_args.vllm_gpu_memory_utilization``, TRL's default
  otherwise); 0 when no engine runs on the training GPUs. **vllm_tensor_parallel**: GPUs per engine
  (train-em's ``vllm_tensor_parallel``; train-rl's ``vllm_args.vllm_tensor_parallel_size``, default 1).
  **vllm_dtype**: the engine's weights (train-em's ``vllm_dtype``; train-rl: bf16). **vllm_held_in_update**:
  train-em releases its engine before the M-step; train-rl's stays unless ``vllm_args`` turns on TRL's
  sleep mode (``vllm_enable_sleep_mode``).

``refuse_unsupported`` holds every combination the trainers refuse; they and `harness plan` call it
through ``run_layout``, before any model is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from harness.training.policy import mixed_precision, refuse_deepspeed, uses_cuda

# GRPOConfig's vllm_gpu_memory_utilization default (trl==1.16.0, pinned): train-rl's colocated engine takes it
# unless vllm_args sets one.
TRL_VLLM_GPU_MEMORY_UTILIZATION = 0.3
# TRL starts its engine with vLLM's dtype "auto", the model folder's: bf16 for the Qwen2.5 models (`trl vllm-serve`,
# the server of both trainers' server mode, defaults to "auto" too).
TRL_VLLM_DTYPE = "bfloat16"
# vllm.LLM arguments train-em sets with fields of its own; setting them in vllm_args too would be ambiguous.
EM_VLLM_OWN_FIELDS = {"tensor_parallel_size": "vllm_tensor_parallel", "gpu_memory_utilization": "vllm_gpu_memory_utilization",
                      "max_model_len": "vllm_max_model_len", "dtype": "vllm_dtype", "model": "model"}


@dataclass(frozen=True)
class RunLayout:
    trainer: str  # train-em or train-rl
    strategy: str  # single, ddp or fsdp
    processes: int
    rollout: str  # hf, vllm-colocate or vllm-server
    compute_dtype: str  # bfloat16 or float32
    weight_dtype: str  # float32 (masters) or bfloat16
    vllm_memory_share: float
    vllm_tensor_parallel: int
    vllm_dtype: str  # the engine's weights
    vllm_held_in_update: bool  # the engine keeps its memory through the update (no release, no sleep)


def strategy_for(fsdp: bool, processes: int) -> str:
    return "fsdp" if fsdp else "ddp" if processes > 1 else "single"


def launched() -> tuple[bool, int]:
    """(FSDP asked for, processes) as ``accelerate launch`` sets them in the environment, before any
    accelerator exists; a DeepSpeed launch is refused here."""
    from harness.training.distributed import rank_and_world

    refuse_deepspeed()
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true", rank_and_world()[1]


def rollout_of(config) -> str:
    if config.COMMAND == "train-em":
        return {"hf": "hf", "vllm": "vllm-colocate", "vllm-server": "vllm-server"}[config.rollout_backend]
    return "hf" if config.vllm_mode == "off" else f"vllm-{config.vllm_mode}"


def vllm_memory_share(config) -> float:
    if rollout_of(config) != "vllm-colocate":
        return 0.0
    if config.COMMAND == "train-em":
        return config.vllm_gpu_memory_utilization
    return float(config.vllm_args.get("vllm_gpu_memory_utilization", TRL_VLLM_GPU_MEMORY_UTILIZATION))


def precisions(config, gpu: bool) -> tuple[str, str]:
    """(compute dtype, weight dtype) of ``config`` on GPUs or not."""
    compute = "bfloat16" if mixed_precision(config.dtype, "cuda" if gpu else "cpu") == "bf16" else "float32"
    return compute, "bfloat16" if config.COMMAND == "train-rl" and config.dtype == "bfloat16" else "float32"


def refuse_unsupported(config, strategy: str, processes: int) -> None:
    """ValueError (one line) for a combination the trainer cannot run."""
    if config.COMMAND == "train-em" and config.rollout_backend == "vllm":
        if processes > 1 and config.vllm_tensor_parallel > 1:
            raise ValueError("vllm_tensor_parallel: must be 1 under a multi-process launch (each rank runs its own "
                             "engine on its own GPU); for tensor parallelism launch one process")
        clash = sorted(set(config.vllm_args) & set(EM_VLLM_OWN_FIELDS))
        if clash:
            raise ValueError(f"vllm_args: set {clash[0]} with the {EM_VLLM_OWN_FIELDS[clash[0]]} field, not in vllm_args")
    if config.COMMAND == "train-rl":
        from harness.rl.strategies import refuse_unshapeable

        config.batch_rows(processes)
        refuse_unshapeable(config)


def run_layout(config, strategy: str, processes: int, gpu: bool) -> RunLayout:
    """The layout of ``config`` launched as ``strategy`` on ``processes`` processes (on GPUs or not), or
    ValueError for a combination the trainer refuses."""
    refuse_unsupported(config, strategy, processes)
    compute, weights = precisions(config, gpu)
    if config.COMMAND == "train-em":
        server = config.rollout_backend == "vllm-server"  # its dtype and tensor parallelism are the server's launch flags
        engine = (1, TRL_VLLM_DTYPE, False) if server else (config.vllm_tensor_parallel, config.vllm_dtype, False)
    else:
        engine = (config.vllm_args.get("vllm_tensor_parallel_size", 1), TRL_VLLM_DTYPE,
                  not config.vllm_args.get("vllm_enable_sleep_mode", False))
    return RunLayout(config.COMMAND, strategy, processes, rollout_of(config), compute, weights, vllm_memory_share(config), *engine)


def launched_layout(config) -> RunLayout:
    """The layout under the launch this process is part of, before an accelerator exists (train-rl: TRL builds it)."""
    fsdp, processes = launched()
    return run_layout(config, strategy_for(fsdp, processes), processes, uses_cuda(config.device))


def accelerator_layout(config, accelerator) -> RunLayout:
    """The layout under ``accelerator`` (train-em builds its own, make_accelerator)."""
    from harness.training.policy import sharded  # looked up at call time: a test stands in for FSDP by replacing it

    processes = accelerator.num_processes
    return run_layout(config, strategy_for(sharded(accelerator), processes), processes, uses_cuda(config.device))
