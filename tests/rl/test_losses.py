"""The shared policy-gradient losses on small hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from harness.rl.losses import (
    aggregate,
    clipped_policy_loss,
    group_advantages,
    kl_k1,
    kl_k3,
    token_logprobs,
    truncated_is_loss,
)


def test_group_advantages_normalise_within_each_group():
    advantages = group_advantages([1, 0, 1, 1, 0, 0, 0, 0], ["a", "a", "a", "a", "b", "b", "b", "b"], eps=0.0)
    # group a: mean 0.75, population std sqrt(0.1875)
    std = math.sqrt(0.1875)
    assert advantages[:4].tolist() == pytest.approx([0.25 / std, -0.75 / std, 0.25 / std, 0.25 / std])
    assert advantages[4:].tolist() == [0, 0, 0, 0]  # no signal in an all-wrong group


def test_group_advantages_without_scaling_are_centred_rewards():
    assert group_advantages([1, 0, 0, 0], ["a"] * 4, scale="none").tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_token_logprobs_match_log_softmax():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[0, 4, 2], [1, 1, 3]])
    expected = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    assert torch.allclose(token_logprobs(logits, targets), expected, atol=1e-6)


def test_token_and_sequence_aggregation():
    values = torch.tensor([[1.0, 2.0, 3.0], [10.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate(values, mask, "token").item() == pytest.approx(16 / 4)
    assert aggregate(values, mask, "sequence").item() == pytest.approx((2 + 10) / 2)


def test_clipped_loss_clips_high_and_low_separately():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.0]]))  # ratios 1.5, 0.5, 1.0
    mask = torch.ones(1, 3)
    positive, stats = clipped_policy_loss(new, old, torch.tensor([1.0]), mask, clip_low=0.2, clip_high=0.28)
    # A>0: min(r, clip(r)) = 1.28, 0.5, 1.0
    assert positive.item() == pytest.approx(-(1.28 + 0.5 + 1.0) / 3)
    assert stats["clip_ratio"] == pytest.approx(1 / 3)
    negative, _ = clipped_policy_loss(new, old, torch.tensor([-1.0]), mask, clip_low=0.2, clip_high=0.28)
    # A<0: min(-r, -clip(r)) = -1.5, -0.8, -1.0
    assert negative.item() == pytest.approx((1.5 + 0.8 + 1.0) / 3)


def test_clipped_tokens_get_no_gradient_and_masked_tokens_none():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 1.0, 1.0]])).requires_grad_(True)
    loss, _ = clipped_policy_loss(new, old, torch.tensor([1.0]), torch.tensor([[1, 1, 0]]))
    loss.backward()
    assert new.grad[0, 0] == 0  # ratio above 1 + clip_high with A > 0: clipped
    assert new.grad[0, 1] != 0
    assert new.grad[0, 2] == 0  # masked (a tool token)


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
    k3 = kl_k3(logp, ref)
    assert k3[0, 0].item() == pytest.approx(0.5 - math.log(0.5) - 1)
    assert k3[0, 1].item() == pytest.approx(0.0)
    assert (kl_k3(torch.randn(4, 7), torch.randn(4, 7)) >= 0).all()
