"""The M-step's objective: off-policy policy gradient + KL to the E-step policy + decision cross-entropy.

    L = mean_i [ pg_i + w_i · KL_k1(i) ]      (``mstep_loss``; the trainer's per-sample terms)
      + decision_weight · CE(s*(·|x), π(·|x))  (``decision_cross_entropy``; per query)

    pg_i = mean_t -log π(y_t) · min(π/π_old, cap).detach() · A_i      (harness.training.losses.truncated_is_loss)
    w_i  = kl_weight, × kl_discount when sample i is wrong

π_old is the model that generated the E-step data; its log-probs are recomputed by the trainer on the
exact training tokens. The KL is averaged over samples: the released v1 trainer summed it over its
per-device micro-batch (of 2), which makes the weight depend on the micro-batch size; with a mean,
``kl_weight`` means the same at any batch layout (v1's 0.5 summed over 2 ≈ 1.0 here).
π(c|x) in the cross-entropy is the model's probability of each decision prefix, renormalised over the
two prefixes, so it pulls the choice itself toward the reference strategy s*.
"""

from __future__ import annotations

import torch

from harness.training.losses import kl_k1, truncated_is_loss


def decision_cross_entropy(prefix_logprobs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-Σ_c s*(c|x) log π(c|x), averaged over queries; ``prefix_logprobs`` is (queries, 2): log P(prefix_c | x)."""
    return -(target * torch.log_softmax(prefix_logprobs, dim=-1)).sum(-1).mean()


def mstep_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    correct: torch.Tensor,
    *,
    rho_cap: float = 1.2,
    kl_weight: float = 1.0,
    kl_discount: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The per-sample terms of L, averaged over the samples given (the decision term is computed per query)."""
    policy = truncated_is_loss(logprobs, old_logprobs, advantages, mask, cap=rho_cap)
    kl = kl_k1(logprobs, old_logprobs, mask)
    weights = torch.where(correct.bool(), torch.full_like(kl, kl_weight), torch.full_like(kl, kl_weight * kl_discount))
    return policy + (weights * kl).mean(), {"policy_loss": policy.item(), "kl": kl.mean().item()}
