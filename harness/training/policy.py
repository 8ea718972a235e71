"""A policy to train, the same way for SFT and EM: fp32 master weights, bf16 compute under autocast.

AdamW on bf16 weights loses small updates: bf16 keeps 8 significant bits, so a weight of 1.0 moves
only in steps of 2^-7 and an lr-1e-6 update (|Δw| ≈ 1e-6) rounds back to the weight it started from.
So the weights, gradients and AdamW moments stay fp32 (what ``harness plan`` counts) and only the
forward and backward run in bf16, under ``torch.autocast`` (``autocast``; the Accelerator itself is
built with ``mixed_precision="no"``: accelerate keeps one precision per process, and a test session
builds trainers of both kinds).
Under FSDP the gathered layers are bf16 and gradients are reduced in fp32 (``fsdp_fp32_reduce``).

FSDP2 is the sharded path (configs/accelerate-fsdp.yaml, run on 2 CPU processes by the tests); DeepSpeed
is refused (``refuse_deepspeed``): no test could run it, so no code path claims to support it.

``dtype`` (the trainers' config field) names the compute precision: ``auto`` is bf16 on a GPU and
fp32 on a CPU, where bf16 matmuls are slow.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

PRECISIONS = ("auto", "float32", "bfloat16")


def uses_cuda(device: str) -> bool:
    if device != "auto":
        return device == "cuda"
    import torch

    return torch.cuda.is_available()


def mixed_precision(dtype: str, device: str) -> str:
    """accelerate's name for the compute precision: ``bf16`` or ``no`` (fp32 throughout)."""
    if dtype not in PRECISIONS:
        raise ValueError(f"dtype must be one of {', '.join(PRECISIONS)}, not {dtype!r}")
    return "bf16" if dtype == "bfloat16" or (dtype == "auto" and uses_cuda(device)) else "no"


def make_accelerator(device: str, dtype: str):
    """The Accelerator every process of a run shares. Under ``accelerate launch`` the strategy (DDP, FSDP)
    comes from the launch config; the precision always comes from the trainer's ``dtype``, so one run
    config means one numeric recipe whatever the launcher says."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    refuse_deepspeed()
    accelerator = Accelerator(cpu=not uses_cuda(device), mixed_precision="no")
    if accelerator.distributed_type == DistributedType.FSDP and mixed_precision(dtype, device) == "bf16":
        fsdp_fp32_reduce(accelerator)
    return accelerator


def refuse_deepspeed() -> None:
    """One clear error for a DeepSpeed launch (``accelerate launch`` with a DeepSpeed config sets
    ACCELERATE_USE_DEEPSPEED), before any model is loaded."""
    import os

    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        raise ValueError("DeepSpeed is not supported: launch with configs/accelerate-fsdp.yaml (FSDP2, the sharded path) "
                         "or configs/accelerate-ddp.yaml")


def autocast(accelerator, dtype: str):
    """The context every forward runs in: bf16 autocast for ``dtype`` bf16 (or auto on a GPU), else none."""
    import torch

    if mixed_precision(dtype, accelerator.device.type) == "no":
        return contextlib.nullcontext()
    return torch.autocast(accelerator.device.type, dtype=torch.bfloat16)


def fsdp_fp32_reduce(accelerator) -> None:
    """FSDP's default bf16 policy also reduces gradients in bf16, which sums 8 ranks' gradients with 8
    significant bits; keep the bf16 gathered layers but reduce (and so accumulate) in fp32."""
    import torch

    plugin = accelerator.state.fsdp_plugin
    if getattr(plugin, "fsdp_version", 1) == 2:
        from torch.distributed.fsdp import MixedPrecisionPolicy

        plugin.mixed_precision_policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    else:
        from torch.distributed.fsdp import MixedPrecision

        plugin.mixed_precision_policy = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                                                       buffer_dtype=torch.float32)


def load_policy(path: str | Path, gradient_checkpointing: bool = False):
    """(model, tokenizer) from a Hugging Face folder, the weights in fp32 whatever the folder stores."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    if gradient_checkpointing:
        # Non-reentrant checkpointing works when only some inputs need gradients and under FSDP.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model, AutoTokenizer.from_pretrained(str(path))


def sharded(accelerator) -> bool:
    """Whether each process holds only a shard of the weights (FSDP)."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


@contextlib.contextmanager
def micro_step(accelerator, model, last: bool):
    """One forward/backward of an optimiser step's micro-batches: gradients are synchronised across
    processes on the ``last`` only (DDP's no_sync). FSDP reduce-scatters every micro-batch: its no_sync would hold
    whole unsharded gradients.
    The forward inside still goes under ``autocast``."""
    from accelerate.utils import DistributedType

    accelerator.gradient_state._set_sync_gradients(last)  # what accelerator.accumulate() sets, for a variable count
    skip_sync = not last and accelerator.distributed_type != DistributedType.FSDP and accelerator.num_processes > 1
    with accelerator.no_sync(model) if skip_sync else contextlib.nullcontext():
        yield
    accelerator.gradient_state._set_sync_gradients(True)
