"""Policy-gradient pieces of the EM trainer's M-step (train-rl's loss is TRL's, harness/rl/trainer.py).

Every function takes per-token tensors of shape (batch, tokens) and a ``mask`` of the same shape
that is 1 on tokens the model generated and 0 on prompt, padding and tool-output tokens, so tool
tokens never receive gradient.

- ``truncated_is_loss``: the EM M-step's off-policy term (AutoCode's released trainer):
  per sample, mean over tokens of -log pi(y_t) * min(pi/pi_old, cap) (detached) * A.
- ``kl_k1``: the k1 KL estimate toward a reference policy, per sample.
- ``aggregate``: token-level (pooled over every token of the batch) or sequence-level (mean per
  sequence, then over sequences) averaging.
- ``token_logprobs``: log pi of each target token from the logits.

``train-em`` calls ``truncated_is_loss`` and ``kl_k1`` through ``harness.em.mstep.mstep_loss``, so the
tests of this module test what trains.
"""

from __future__ import annotations

import torch


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per position, without materialising the full log-softmax twice."""
    return torch.gather(logits.float(), -1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits.float(), dim=-1)


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str = "token") -> torch.Tensor:
    """Average masked per-token values: ``token`` pools every token of the batch, ``sequence`` averages
    each sequence first (every sequence weighs the same, whatever its length)."""
    mask = mask.to(values.dtype)
    if mode == "sequence":
        values = values / mask.sum(-1, keepdim=True).clamp(min=1)
        count = (mask.sum(-1) > 0).sum()
    elif mode == "token":
        count = mask.sum()
    else:
        raise ValueError(f"aggregation must be token or sequence, not {mode!r}")
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
    return aggregate(per_token, mask, "sequence")


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample k1 estimate mean_t(log pi_ref) - mean_t(log pi), shape (batch,), as AutoCode computes it."""
    mask = mask.to(logprobs.dtype)
    tokens = mask.sum(-1).clamp(min=1)
    return ((ref_logprobs - logprobs) * mask).sum(-1) / tokens
