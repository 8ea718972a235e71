"""The EM trainer's E-step estimates and M-step terms on small hand-computed cases."""

from __future__ import annotations

import math
import random

import pytest
import torch

from harness.em.estep import (
    decision_policy_from_logprobs,
    decision_policy_from_rates,
    em_advantages,
    keep_query,
    reference_strategy,
    subsample,
    success_rates,
)
from harness.em.objective import decision_cross_entropy, mstep_loss


def rollouts(query, cot, code):
    return [{"doc_id": query, "decision": decision, "correct": c} for decision, results in (("cot", cot), ("code", code)) for c in results]


def test_success_rates():
    values = success_rates(rollouts("q", [1, 0, 0, 0], [1, 1, 1, 0]) + rollouts("r", [0, 0], []))
    assert values["q"] == {"cot": 0.25, "code": 0.75}
    assert values["r"] == {"cot": 0.0, "code": None}


def test_finite_alpha_is_a_softmax_of_policy_times_value():
    strategy = reference_strategy({"cot": 0.8, "code": 0.2}, {"cot": 0.5, "code": 1.0}, alpha=2.0)
    a, b = math.exp(2 * 0.4), math.exp(2 * 0.2)
    assert strategy == pytest.approx({"cot": a / (a + b), "code": b / (a + b)})


def test_infinite_alpha_is_argmax_and_ties_go_to_cot():
    assert reference_strategy({"cot": 0.5, "code": 0.5}, {"cot": 0.25, "code": 0.75}, math.inf) == {"cot": 0.0, "code": 1.0}
    assert reference_strategy({"cot": 0.5, "code": 0.5}, {"cot": 0.5, "code": 0.5}, math.inf) == {"cot": 1.0, "code": 0.0}
    assert reference_strategy({"cot": 0.9, "code": 0.1}, {"cot": 0.2, "code": 1.0}, math.inf) == {"cot": 1.0, "code": 0.0}


def test_a_decision_without_rollouts_gets_zero():
    assert reference_strategy({"cot": 0.5, "code": 0.5}, {"cot": 0.5, "code": None}, 1.0) == {"cot": 1.0, "code": 0.0}


def test_queries_where_everything_failed_are_dropped():
    assert not keep_query({"cot": 0.0, "code": 0.0})
    assert not keep_query({"cot": 0.0, "code": None})
    assert keep_query({"cot": 0.0, "code": 0.125})


def test_decision_policies():
    assert decision_policy_from_rates(0.0) == pytest.approx({"cot": 0.95, "code": 0.05})
    assert decision_policy_from_rates(0.5) == pytest.approx({"cot": 0.5, "code": 0.5})
    assert decision_policy_from_logprobs(math.log(0.2), math.log(0.6)) == pytest.approx({"cot": 0.25, "code": 0.75})


def test_subsampling_rules():
    pool = rollouts("q", [1, 0], [1, 1, 0]) + rollouts("dropped", [0], [0])
    strategies = {"q": {"cot": 0.0, "code": 1.0}}
    argmax = subsample(pool, strategies, "argmax", 4, random.Random(0))
    assert [r["decision"] for r, _ in argmax] == ["code"] * 3
    weighted = subsample(pool, {"q": {"cot": 0.25, "code": 0.75}}, "weight", 4, random.Random(0))
    assert sum(w for _, w in weighted) == pytest.approx(1.0) and len(weighted) == 5
    sampled = subsample(pool, strategies, "sample", 10, random.Random(0))
    assert len(sampled) == 3 and all(r["decision"] == "code" for r, _ in sampled)  # without replacement
    mixed = subsample(pool * 50, {"q": {"cot": 0.5, "code": 0.5}}, "sample", 200, random.Random(1))
    share = sum(r["decision"] == "code" for r, _ in mixed) / len(mixed)
    assert 0.4 < share < 0.6


def test_advantage_kinds():
    batch = rollouts("q", [1, 0, 0, 1], []) + rollouts("all_right", [1, 1], []) + rollouts("all_wrong", [0, 0], [])
    assert em_advantages(batch, "sign") == [1, -1, -1, 1, 1, 1, -1, -1]
    whitened = em_advantages(batch, "whiten")
    assert whitened[:4] == pytest.approx([1, -1, -1, 1])  # mean 0.5, std 0.5
    assert whitened[4:6] == [1.0, 1.0] and whitened[6:] == [None, None]
    clipped = em_advantages(rollouts("q", [1, 0, 0, 0, 0, 0, 0, 0, 0, 0], []), "whiten")
    assert clipped[0] == 2.0  # (1 - 0.1) / 0.3 = 3 → clipped


def test_decision_cross_entropy():
    logits = torch.log(torch.tensor([[0.2, 0.6]]))  # renormalised: 0.25, 0.75
    assert decision_cross_entropy(logits, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(-math.log(0.75))


def test_mstep_loss_discounts_kl_on_wrong_samples():
    logp = torch.log(torch.tensor([[0.5], [0.5]]))
    old = torch.log(torch.tensor([[0.25], [0.25]]))
    loss, stats = mstep_loss(logp, old, torch.tensor([1.0, -1.0]), torch.ones(2, 1), torch.tensor([1, 0]),
                             rho_cap=1.2, kl_weight=1.0, kl_discount=0.1)
    kl = math.log(0.25) - math.log(0.5)
    policy = ((-math.log(0.5) * 1.2 * 1) + (-math.log(0.5) * 1.2 * -1)) / 2
    assert loss.item() == pytest.approx(policy + (1.0 * kl + 0.1 * kl) / 2)  # KL averaged over the samples
