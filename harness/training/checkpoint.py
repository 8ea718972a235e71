"""Checkpoints a run can resume from exactly: weights, optimizer, scheduler, step and every RNG state.

One layout for every trainer (SFT, RL, EM): ``OUTPUT/checkpoints/step-000120/`` holds the model and
tokenizer (loadable on their own), ``trainer_state.pt`` (optimizer, scheduler, RNGs) and
``trainer.json`` (the step and the trainer's own ``extra`` record, readable without torch). A
checkpoint is written to a temporary folder and renamed into place, so a run killed mid-save leaves
the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

STATE_FILE = "trainer_state.pt"
INFO_FILE = "trainer.json"


def shard_state_file(rank: int) -> str:
    """Where process ``rank`` of a sharded run (FSDP) keeps its own optimiser shard; rank 0 uses STATE_FILE."""
    return f"trainer_state.rank{rank}.pt"


def rng_state() -> dict:
    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def checkpoint_dir(output: Path, step: int) -> Path:
    return Path(output) / "checkpoints" / f"step-{step:06d}"


def save_checkpoint(output: Path, step: int, model, tokenizer, optimizer, scheduler, extra: dict | None = None, keep: int = 2,
                    state_dict: dict | None = None) -> Path:
    """Write checkpoint ``step`` and keep only the newest ``keep`` (0: keep all); ``state_dict``: the full
    weights when ``model`` holds only a shard (gathered by ``accelerator.get_state_dict``)."""
    import torch

    final = checkpoint_dir(output, step)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(str(partial), state_dict=state_dict)
    tokenizer.save_pretrained(str(partial))
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
               partial / STATE_FILE)
    (partial / INFO_FILE).write_text(json.dumps({"step": step, "extra": extra or {}}, indent=2, default=str))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in list_checkpoints(output)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_model(folder: Path, model, tokenizer, state_dict: dict | None = None, dtype: str = "bfloat16") -> None:
    """The model (``state_dict``: its full weights, when ``model`` holds a shard) as a safetensors model folder
    in ``dtype`` with its tokenizer and chat template, loadable on its own (``harness eval --model hf:FOLDER``);
    files the folder already holds under other names stay. Written beside it first and moved in with
    ``config.json`` last, so a folder with ``config.json`` holds a whole model."""
    import torch

    folder = Path(folder)
    weights = state_dict if state_dict is not None else model.state_dict()
    weights = {name: tensor.to(getattr(torch, dtype)) if tensor.is_floating_point() else tensor for name, tensor in weights.items()}
    partial = folder.with_name(folder.name + ".model-partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(str(partial), state_dict=weights)
    tokenizer.save_pretrained(str(partial))
    config = json.loads((partial / "config.json").read_text())
    # save_pretrained names the module's own dtype (float32 while training), not the weights written.
    for key in {"torch_dtype", "dtype"} & set(config) or {"torch_dtype"}:
        config[key] = dtype
    (partial / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(partial.iterdir(), key=lambda p: p.name == "config.json"):
        path.replace(folder / path.name)
    partial.rmdir()


def list_checkpoints(output: Path) -> list[Path]:
    root = Path(output) / "checkpoints"
    found = [p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".partial") and (p / INFO_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output: Path) -> Path | None:
    found = list_checkpoints(output)
    return found[-1] if found else None


def checkpoint_info(checkpoint: Path) -> dict:
    """``{"step": N, "extra": {...}}`` as the trainer saved it."""
    return json.loads((Path(checkpoint) / INFO_FILE).read_text())


def load_trainer_state(checkpoint: Path, optimizer, scheduler, rank: int = 0) -> dict:
    """Restore optimizer moments, the schedule's position and the RNGs in place; returns the checkpoint's
    info (``step``, ``extra``). The hyper-parameters (learning rate, weight decay, ...) stay those the live
    optimizer was built with: a resume that changes them (recorded in provenance.json) must use them,
    not the checkpoint's, which would otherwise silently win. Process ``rank`` of a sharded run takes
    its own optimiser shard when the checkpoint has one."""
    import torch

    state = torch.load(Path(checkpoint) / STATE_FILE, weights_only=False)
    if rank and (shard := Path(checkpoint) / shard_state_file(rank)).is_file():
        state["optimizer"] = torch.load(shard, weights_only=False)["optimizer"]
    settings = [{k: v for k, v in group.items() if k not in ("params", "lr")} for group in optimizer.param_groups]
    schedule = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps the scheduler
    base_lrs = list(getattr(schedule, "base_lrs", []))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    for group, fresh in zip(optimizer.param_groups, settings):
        group.update(fresh)
    if hasattr(schedule, "lr_lambdas"):
        schedule.base_lrs = base_lrs
        for group, base, factor in zip(optimizer.param_groups, base_lrs, schedule.lr_lambdas):
            group["lr"] = base * factor(schedule.last_epoch)  # what the schedule's own step computes
        schedule._last_lr = [group["lr"] for group in optimizer.param_groups]
    restore_rng_state(state["rng"])
    return checkpoint_info(checkpoint)


def read_weights(checkpoint: Path) -> dict:
    """A checkpoint's full weights, from all its safetensors shards."""
    from safetensors.torch import load_file

    weights = {}
    for shard in sorted(Path(checkpoint).glob("*.safetensors")):
        weights.update(load_file(shard))
    return weights


def load_whole(model, weights: dict, source: str) -> None:
    """Copy full ``weights`` into an existing module (cast to its dtype); every parameter must be there but a
    tied lm_head, which a save leaves out."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = {name for name in missing if name.endswith("lm_head.weight")}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"{source} does not match the model (missing {sorted(missing)[:3]}, unexpected {unexpected[:3]})")


def load_weights(checkpoint: Path, model) -> None:
    """Copy a checkpoint's weights into an existing module (one an optimizer or accelerate already holds)."""
    load_whole(model, read_weights(checkpoint), f"checkpoint {checkpoint}")

