"""Where a strategy meets TRL's GRPOTrainer (harness/rl/grpo.py calls these two functions).

``shape_rewards`` runs inside ``_calculate_rewards``, on every process's rewards (TRL gathers them before it
normalises): it builds the RolloutBatch from the rollout function's ``tool_calls`` / ``tool_failures`` and
the outcome reward, and puts the strategy's rewards in the reward column TRL normalises. ``shape_output``
runs on this process's slice of the scored batch: it applies the advantage floor for correct rollouts and
takes dropped rollouts out of the loss (their completion mask, and TRL's token count for the DAPO loss).
Both log ``strategy/*`` metrics: the mean shaped reward and the share of rollouts kept.
"""

from __future__ import annotations

import math

from harness.rl.strategies import RolloutBatch, Shaping
from harness.training.schedule import mix_seed


def _everyone(trainer, values: list) -> list:
    from accelerate.utils import gather_object

    return gather_object(values) if trainer.accelerator.num_processes > 1 else values


def shape_rewards(trainer, inputs: list[dict], rewards_per_func):
    """``rewards_per_func`` with the strategy's rewards in column 0 (the outcome reward); remembers the shaping."""
    import torch

    batch = RolloutBatch(
        correct=[bool(reward == 1.0) for reward in rewards_per_func[:, 0].tolist()],
        tool_calls=_everyone(trainer, [row["tool_calls"] for row in inputs]),
        tool_failures=_everyone(trainer, [row["tool_failures"] for row in inputs]),
        group_size=trainer.num_generations, max_tool_calls=trainer.config.max_tool_calls,
        seed=mix_seed(trainer.config.seed, trainer.state.global_step, 0))
    shaping: Shaping = trainer.strategy.shape(batch)
    trainer.shaping = (batch, shaping)
    shaped = rewards_per_func.clone()
    shaped[:, 0] = torch.tensor(shaping.rewards, dtype=shaped.dtype, device=shaped.device)
    kept = [r for r in shaping.rewards if not math.isnan(r)]
    trainer._metrics["train"]["strategy/reward"].append(sum(kept) / len(kept) if kept else 0.0)
    trainer._metrics["train"]["strategy/kept"].append(len(kept) / len(shaping.rewards))
    return shaped


def shape_output(trainer, output: dict) -> dict:
    import torch

    batch, shaping = trainer.shaping
    rows = len(output["advantages"])
    local = slice(trainer.accelerator.process_index * rows, (trainer.accelerator.process_index + 1) * rows)
    rewards = torch.tensor(shaping.rewards[local], device=output["advantages"].device)
    if shaping.correct_advantage_floor is not None:
        correct = torch.tensor(batch.correct[local], device=rewards.device)
        floored = output["advantages"].clamp(min=shaping.correct_advantage_floor)
        output["advantages"] = torch.where(correct, floored, output["advantages"])
    dropped = torch.isnan(rewards)
    if dropped.any():
        output["completion_mask"] = output["completion_mask"] * (~dropped).unsqueeze(1).to(output["completion_mask"].dtype)
        mask = output["completion_mask"] if "tool_mask" not in output else output["completion_mask"] * output["tool_mask"]
        output["num_items_in_batch"] = trainer.accelerator.gather(mask.sum()).sum()
    return output
