"""Policy-gradient losses on per-token tensors (train-em's M-step uses them; train-rl's loss is TRL's).

Every function takes per-token tensors of shape (batch, tokens) and a ``mask`` of the same shape
that is 1 on tokens the model generated and 0 on prompt, padding and tool-output tokens, so tool
tokens never receive gradient.

- ``truncated_is_loss``: the EM M-step's off-policy term (AutoCode's released trainer):
  per sample, mean over tokens of -log pi(y_t) * min(pi/pi_old, cap) (detached) * A.
- ``kl_k1``: the k1 KL estimate toward a reference policy, per sample.
- ``sequence_mean``: the mean per sequence, then over sequences (every sequence weighs the same).
- ``token_logprobs``: log pi of each target token from the logits.

``train-em`` calls ``truncated_is_loss`` and ``kl_k1`` through ``harness.em.objective.mstep_loss``, so the
tests of this module test what trains.
"""

from __future__ import annotations

import torch


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per position, without materialising the full log-softmax twice."""
    return torch.gather(logits.float(), -1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits.float(), dim=-1)


def sequence_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average masked per-token values over each sequence first, then over the sequences that have tokens."""
    mask = mask.to(values.dtype)
    values = values / mask.sum(-1, keepdim=True).clamp(min=1)
    count = (mask.sum(-1) > 0).sum()
    return (values * mask).sum() / count.clamp(min=1)


def truncated_is_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cap: float = 1.2
) -> torch.Tensor:
    """Per sample: mean_t of -log pi(y_t) * min(exp(log pi - log pi_old), cap).detach() * A; then mean over samples.

    Unlike the PPO surrogate, the gradient is never zeroed outside a clip range: it is a truncated
    importance-weighted REINFORCE (the weight is capped above only, as in the released AutoCode trainer).
    """
    weight = torch.clamp(torch.exp(logprobs - old_logprobs), max=cap).detach()
    per_token = -logprobs * weight * advantages.unsqueeze(-1).to(logprobs.dtype)
    return sequence_mean(per_token, mask)


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample k1 estimate mean_t(log pi_ref) - mean_t(log pi), shape (batch,), as AutoCode computes it."""
    mask = mask.to(logprobs.dtype)
    tokens = mask.sum(-1).clamp(min=1)
    return ((ref_logprobs - logprobs) * mask).sum(-1) / tokens
