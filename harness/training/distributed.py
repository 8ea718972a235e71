"""Splitting work over processes and into micro-batches, the same way for SFT and EM.

Every process holds the whole batch (SFT: the step's examples are a function of seed and step; EM:
the E-step is gathered to every process), so each one computes every process's share and micro-batch
plan itself, with no message passing. That is what keeps collective calls in step: under FSDP
each forward gathers parameters from every process, so a process with fewer micro-batches
than the others would leave them waiting forever. ``rounds`` pads every process to the longest plan
with ``None``, a dummy micro-batch whose loss is multiplied by 0.

A micro-batch is bounded by rows and by tokens: right-padded rows cost rows x the longest row, so
``micro_batches`` closes a micro-batch before that product would pass ``max_tokens`` (a single row
longer than the budget gets a micro-batch of its own: a sequence is never cut).
"""

from __future__ import annotations

import math
import os


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes as the launcher (``accelerate launch``, torchrun)
    sets them in the environment: known before any process group or accelerator exists, and the numbers
    an accelerator reports once it does; rank 0 of 1 without a launcher. Code holding an accelerator
    asks it (``process_index``, ``num_processes``); everything else asks this."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def share(count: int, rank: int, world: int) -> list[int]:
    """The indices of ``count`` items process ``rank`` of ``world`` takes: every world-th, so shares differ by one at most."""
    return list(range(rank, count, world))


def micro_batches(lengths: list[int], max_rows: int, max_tokens: int = 0) -> list[list[int]]:
    """Consecutive groups of positions into ``lengths``: at most ``max_rows`` rows, and (``max_tokens`` > 0)
    rows x longest row at most ``max_tokens``."""
    groups: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index, length in enumerate(lengths):
        wider = max(longest, length)
        if current and (len(current) >= max_rows or (max_tokens and (len(current) + 1) * wider > max_tokens)):
            groups.append(current)
            current, wider = [], length
        current.append(index)
        longest = wider
    if current:
        groups.append(current)
    return groups


def rounds(plans: list[list], rank: int) -> list:
    """Process ``rank``'s plan padded with None to the longest of ``plans`` (one plan per process)."""
    longest = max(len(plan) for plan in plans)
    return list(plans[rank]) + [None] * (longest - len(plans[rank]))


def chunk_rounds(count: int, world: int, chunk: int) -> int:
    """How many rounds of ``chunk`` items the largest share of ``count`` items over ``world`` needs."""
    return math.ceil(math.ceil(count / world) / chunk) if count else 0


def gather(accelerator, items: list) -> list:
    """Every process's ``items`` on every process, in rank order (a collective: every process must call it)."""
    if accelerator.num_processes == 1:
        return list(items)
    import torch.distributed as dist

    parts: list = [None] * accelerator.num_processes
    dist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]


def broadcast(accelerator, value):
    """The main process's ``value`` on every process."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def decided_by_main(accelerator, decide):
    """``decide()`` run by the main process alone, its value handed to every process. When it raises, every
    process raises the same error: had only the main process raised, the others would wait forever in the
    broadcast it never reaches. A collective: every process must call it."""
    outcome = None
    if accelerator.is_main_process:
        try:
            outcome = (decide(), None)
        except Exception as exc:  # noqa: BLE001 - handed to every process, then raised on every one
            outcome = (None, exc)
    value, error = broadcast(accelerator, outcome)
    if error is not None:
        raise error
    return value


def save_model_everywhere(accelerator, folder, model, tokenizer, dtype: str = "bfloat16") -> None:
    """A prepared model's weights as a model folder in ``dtype`` (``checkpoint.save_model``): gathered from every
    process (a collective under FSDP) and written by the main process; everyone waits for the folder."""
    from harness.training.checkpoint import save_model

    weights = full_state_to_save(accelerator, model)
    if accelerator.is_main_process:
        save_model(folder, accelerator.unwrap_model(model), tokenizer, weights, dtype)
    accelerator.wait_for_everyone()


def save_checkpoint_everywhere(accelerator, output, step: int, model, tokenizer, optimizer, scheduler, extra: dict | None = None):
    """A checkpoint of a prepared model: the full weights gathered (a collective under FSDP) and
    written by the main process; the optimiser state by the main process when it is replicated, and by
    every process (its own shard, ``trainer_state.rankN.pt``) when it is sharded. Everyone waits for the folder."""
    import torch

    from harness.training.checkpoint import checkpoint_dir, save_checkpoint, shard_state_file
    from harness.training.policy import sharded

    weights = full_state_to_save(accelerator, model)
    if accelerator.is_main_process:
        save_checkpoint(output, step, accelerator.unwrap_model(model), tokenizer, optimizer, scheduler, extra, state_dict=weights)
    accelerator.wait_for_everyone()
    if sharded(accelerator) and not accelerator.is_main_process:
        torch.save({"optimizer": optimizer.state_dict()}, checkpoint_dir(output, step) / shard_state_file(accelerator.process_index))
    accelerator.wait_for_everyone()


def full_state_to_save(accelerator, model) -> dict:
    """The weights ``save_pretrained`` should write for a prepared model, on the main process (a collective
    under FSDP: every process calls it). A gathered state dict holds a tied tensor (embeddings and
    lm_head) once per name, as separate copies that ``save_pretrained`` cannot recognise as shared, so a
    sharded run's checkpoint would carry an extra ``lm_head.weight``; tied names after the first are dropped."""
    weights = accelerator.get_state_dict(model)
    seen, tied = set(), set()
    for name, parameter in accelerator.unwrap_model(model).named_parameters(remove_duplicate=False):
        if id(parameter) in seen:
            tied.add(name)
        seen.add(id(parameter))
    return {name: tensor for name, tensor in weights.items() if name not in tied}


def load_weights_everywhere(accelerator, checkpoint, model) -> None:
    """A checkpoint's full weights into a prepared model on every process: into the module itself when it
    is replicated (DDP, one process), through torch's distributed state-dict API when FSDP shards it."""
    from accelerate.utils import DistributedType

    from harness.training.checkpoint import load_weights, read_weights

    if accelerator.distributed_type != DistributedType.FSDP:
        load_weights(checkpoint, accelerator.unwrap_model(model))
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, read_weights(checkpoint), options=StateDictOptions(full_state_dict=True, strict=False))


def full_weights(accelerator, model) -> dict:
    """The whole model's weights on every process: a collective under FSDP (torch's distributed state-dict
    API, full tensors on each process); the module's own state dict otherwise."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    return accelerator.unwrap_model(model).state_dict()
