"""Checkpoints that resume exactly: weights, optimizer, scheduler, step and every RNG state.

``OUT/checkpoints/step-N/`` is written under a temporary name and renamed, and ``OUT/checkpoints/latest``
is replaced atomically, so a run killed mid-save resumes from the previous complete checkpoint.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path

import torch

from harness.io import atomic_write_text


def _rng_state() -> dict:
    import numpy

    return {"python": random.getstate(), "numpy": numpy.random.get_state(), "torch": torch.get_rng_state()}


def _restore_rng(state: dict) -> None:
    import numpy

    random.setstate(state["python"])
    numpy.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(out: Path, step: int, model, tokenizer, optimizer, scheduler, config: dict) -> Path:
    root = Path(out) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".step-{step}.", dir=root))
    model.save_pretrained(staging / "model")
    tokenizer.save_pretrained(staging / "model")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state()}, staging / "state.pt")
    (staging / "trainer.json").write_text(json.dumps({"step": step, "config": config}, indent=2, default=str))
    final = root / f"step-{step}"
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    atomic_write_text(root / "latest", final.name + "\n")
    return final


def latest_checkpoint(out: Path) -> Path | None:
    pointer = Path(out) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if (path / "trainer.json").is_file() else None


def load_checkpoint(out: Path, model, optimizer, scheduler) -> int:
    """Restore the latest checkpoint into the given objects; returns its step (0 when there is none)."""
    from safetensors.torch import load_file

    path = latest_checkpoint(out)
    if path is None:
        return 0
    weights = {}
    for shard in sorted((path / "model").glob("*.safetensors")):
        weights.update(load_file(shard))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = {name for name in missing if name.endswith("lm_head.weight")}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"checkpoint {path} does not match the model (missing {sorted(missing)[:3]}, unexpected {unexpected[:3]})")
    state = torch.load(path / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _restore_rng(state["rng"])
    return json.loads((path / "trainer.json").read_text())["step"]
