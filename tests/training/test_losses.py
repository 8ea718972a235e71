"""The shared policy-gradient losses on small hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from harness.training.losses import kl_k1, sequence_mean, token_logprobs, truncated_is_loss


def test_token_logprobs_match_log_softmax():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[0, 4, 2], [1, 1, 3]])
    expected = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    assert torch.allclose(token_logprobs(logits, targets), expected, atol=1e-6)


def test_sequence_mean_weighs_every_sequence_the_same():
    values = torch.tensor([[1.0, 2.0, 3.0], [10.0, 0.0, 0.0], [7.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])  # the third sequence has no tokens: it does not count
    assert sequence_mean(values, mask).item() == pytest.approx((2 + 10) / 2)


def test_truncated_is_weight_is_capped_above_only_and_detached():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[2.0, 0.5]])).requires_grad_(True)
    loss = truncated_is_loss(new, old, torch.tensor([1.0]), torch.ones(1, 2), cap=1.2)
    expected = -(math.log(2.0) * 1.2 + math.log(0.5) * 0.5) / 2
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert new.grad[0].tolist() == pytest.approx([-1.2 / 2, -0.5 / 2])  # d/dlogp of -logp*w*A/T, w constant


def test_kl_estimators():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    ref = torch.log(torch.tensor([[0.25, 0.25]]))
    assert kl_k1(logp, ref, torch.ones(1, 2)).tolist() == pytest.approx([(math.log(0.25) - math.log(0.5)) / 2])
