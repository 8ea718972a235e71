"""The learning-rate schedule and the seed mixer every trainer shares (SFT, vanilla RL, EM's M-step).

One definition each, so a change to warm-up or to how seeds are derived reaches all three trainers
at once and the tiny presets of RL and EM can be compared like for like.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")
_SEED_MODULUS = 2**31 - 1  # fits every RNG the trainers seed (random, torch, the rollout engine)


def lr_factor(step: int, total: int, warmup: int = 0, kind: str = "cosine", floor: float = 0.0) -> float:
    """Multiplier of the peak rate at optimiser step ``step`` (0-based) of ``total``: linear warm-up over
    ``warmup`` steps, then ``constant`` or a ``cosine`` decay to ``floor`` times the peak by ``total``."""
    if kind not in SCHEDULES:
        raise ValueError(f"learning-rate schedule must be one of {', '.join(SCHEDULES)}, not {kind!r}")
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def mix_seed(*parts: int) -> int:
    """A seed from integer parts (run seed, step, index, ...): order matters, so (1, 2) and (2, 1) differ."""
    value = 0
    for part in parts:
        value = (value * 1_000_003 + part) % _SEED_MODULUS
    return value
