"""Adaptive tool-use strategies as reward/advantage shapers on train-rl's GRPO (``strategy`` in RLConfig).

TRL scores a generation batch, then normalises rewards within each group into advantages. A strategy sees
every process's rollouts of the batch (``RolloutBatch``: correctness, executed cells and failed cells per
rollout, groups of ``group_size`` consecutive rows) and returns a ``Shaping``:

- ``rewards``: what TRL normalises instead of the outcome reward; NaN drops a rollout (TRL leaves NaN
  rewards out of the group's mean and std and gives them no advantage; the hook also takes their tokens out
  of the loss and its normaliser);
- ``correct_advantage_floor``: when set, a correct rollout's advantage is raised to at least this value
  after TRL's normalisation.

``none`` is plain GRPO; ``otc`` (otc.py), ``adatir`` (adatir.py) and ``roc`` (roc.py) are the papers'
shapers, each with its equation and constants in its docstring. hook.py wires them into the trainer.
Strategies read correctness from the outcome reward, so they refuse format and tool bonuses.
"""

from __future__ import annotations

from dataclasses import dataclass

STRATEGIES = ("none", "otc", "adatir", "roc")


@dataclass(frozen=True)
class RolloutBatch:
    correct: list[bool]
    tool_calls: list[int]
    tool_failures: list[int]
    group_size: int
    max_tool_calls: int
    seed: int = 0  # for the strategies that sample (roc): the run seed mixed with the step

    def groups(self) -> list[range]:
        return [range(start, start + self.group_size) for start in range(0, len(self.correct), self.group_size)]


@dataclass(frozen=True)
class Shaping:
    rewards: list[float]
    correct_advantage_floor: float | None = None


def refuse_unshapeable(config) -> None:
    """ValueError when the config cannot carry its strategy (one of training/layout.refuse_unsupported's rules)."""
    if config.strategy == "none":
        return
    if config.format_reward or config.tool_reward:
        raise ValueError(f"strategy: {config.strategy} shapes the outcome reward; set format_reward and tool_reward to 0")
    if config.strategy == "roc" and config.group_size % 2:
        raise ValueError(f"strategy: roc keeps half of each oversampled group; group_size must be even (got {config.group_size})")


def build_strategy(config):
    """The configured strategy, or None for plain GRPO; ValueError when the config cannot carry it."""
    refuse_unshapeable(config)
    if config.strategy == "none":
        return None
    from harness.rl.strategies.adatir import AdaTIR
    from harness.rl.strategies.otc import OTC
    from harness.rl.strategies.roc import ResampleOnCorrect

    return {"otc": OTC, "adatir": AdaTIR, "roc": ResampleOnCorrect}[config.strategy]()
