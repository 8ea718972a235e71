"""Policy-gradient losses shared by the RL baseline (``train-rl``) and the EM trainer's M-step.

Every function takes per-token tensors of shape (batch, tokens) and a ``mask`` of the same shape
that is 1 on tokens the model generated and 0 on prompt, padding and tool-output tokens, so tool
tokens never receive gradient.

- ``group_advantages``: GRPO-style outcome advantages, normalised within each prompt's group.
- ``clipped_policy_loss``: PPO's clipped surrogate with separate low/high clip (DAPO's clip-higher).
- ``truncated_is_loss``: the EM M-step's off-policy term (AutoCode's released trainer):
  per sample, mean over tokens of -log pi(y_t) * min(pi/pi_old, cap) (detached) * A.
- ``kl_k1`` / ``kl_k3``: KL estimators toward a reference policy (k3 is the low-variance one).
- ``aggregate``: token-level (DAPO: pooled over every token of the batch) or sequence-level
  (GRPO: mean per sequence, then over sequences) averaging; given the count of a larger batch
  (``normaliser``), a micro-batch's share of that batch's mean.

The trainers call these functions (``train-rl``: ``clipped_policy_loss`` + ``aggregate(kl_k3)``;
``train-em``: ``truncated_is_loss`` and ``kl_k1`` through ``harness.em.mstep.mstep_loss``), so the
tests of this module test what trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def group_advantages(rewards: Sequence[float], groups: Sequence[object], scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """(r - mean of the group) / (std of the group + eps); ``scale="none"`` keeps the centred reward (Dr.GRPO),
    ``scale="batch"`` divides by the whole batch's std. A group whose rewards are all equal gets 0."""
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale must be group, batch or none, not {scale!r}")
    values = torch.as_tensor(list(rewards), dtype=torch.float64)
    advantages = torch.zeros_like(values)
    members: dict[object, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    for indices in members.values():
        group_rewards = values[indices]
        centred = group_rewards - group_rewards.mean()
        if scale == "group":
            std = group_rewards.std(unbiased=False) if len(indices) > 1 else torch.tensor(0.0, dtype=torch.float64)
            centred = centred / (std + eps) if std > 0 else torch.zeros_like(centred)
        advantages[indices] = centred
    if scale == "batch":
        advantages = advantages / (values.std(unbiased=False) + eps)
    return advantages.float()


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per position, without materialising the full log-softmax twice."""
    return torch.gather(logits.float(), -1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits.float(), dim=-1)


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str = "token", normaliser: float | None = None) -> torch.Tensor:
    """Average masked per-token values: ``token`` pools every token of the batch, ``sequence`` averages
    each sequence first (every sequence weighs the same, whatever its length). ``normaliser`` replaces
    this batch's own count (tokens, or sequences with tokens) by a larger batch's: micro-batches then
    add up to that batch's mean, whatever the split."""
    mask = mask.to(values.dtype)
    if mode == "sequence":
        values = values / mask.sum(-1, keepdim=True).clamp(min=1)
        count = (mask.sum(-1) > 0).sum()
    elif mode == "token":
        count = mask.sum()
    else:
        raise ValueError(f"aggregation must be token or sequence, not {mode!r}")
    return (values * mask).sum() / (normaliser if normaliser is not None else count.clamp(min=1))


def clipped_objective(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, clip_low: float = 0.2, clip_high: float = 0.28
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token -min(r*A, clip(r, 1-clip_low, 1+clip_high)*A), r = pi/pi_old; and where clipping bound."""
    ratio = torch.exp(logprobs - old_logprobs)
    per_sequence_advantage = advantages.unsqueeze(-1).to(ratio.dtype)
    unclipped = ratio * per_sequence_advantage
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * per_sequence_advantage
    return -torch.minimum(unclipped, clipped), (clipped < unclipped).detach()


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    aggregation: str = "token",
    normaliser: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate averaged with ``aggregation`` (see ``aggregate`` for ``normaliser``);
    returns (loss, {"clip_ratio": share of these tokens where the clip bound, "clipped_tokens": their count})."""
    per_token, was_clipped = clipped_objective(logprobs, old_logprobs, advantages, clip_low, clip_high)
    loss = aggregate(per_token, mask, aggregation, normaliser)
    clipped = float((was_clipped * mask).sum())
    return loss, {"clip_ratio": clipped / max(float(mask.sum()), 1.0), "clipped_tokens": clipped}


def truncated_is_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cap: float = 1.2
) -> torch.Tensor:
    """Per sample: mean_t of -log pi(y_t) * min(exp(log pi - log pi_old), cap).detach() * A; then mean over samples.

    Unlike the PPO surrogate, the gradient is never zeroed outside a clip range: it is a truncated
    importance-weighted REINFORCE (the weight is capped above only, as in the released AutoCode trainer).
    """
    weight = torch.clamp(torch.exp(logprobs - old_logprobs), max=cap).detach()
    per_token = -logprobs * weight * advantages.unsqueeze(-1).to(logprobs.dtype)
    return aggregate(per_token, mask, "sequence")


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample k1 estimate mean_t(log pi_ref) - mean_t(log pi), shape (batch,), as AutoCode computes it."""
    mask = mask.to(logprobs.dtype)
    tokens = mask.sum(-1).clamp(min=1)
    return ((ref_logprobs - logprobs) * mask).sum(-1) / tokens


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate exp(ref - logp) - (ref - logp) - 1 (non-negative, low variance)."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1
