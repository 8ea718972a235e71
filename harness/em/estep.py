"""The E-step: estimate how well each decision works per query, form the reference strategy, pick training data.

The latent decision c is ``"cot"`` or ``"code"``. For each query the E-step has K rollouts under each
decision (code forced by a prefix); from them:

- ``success_rates``: Q̂(x, c) = correct / rollouts under c (None when c has no rollouts);
- ``reference_strategy``: s*(c|x) ∝ exp(α · π(c|x) · Q̂(x, c)); α = ∞ is the hard argmax of π·Q̂
  (AutoCode v1), ties going to CoT (code costs calls and tokens);
- ``keep_query``: queries where every rollout failed carry no signal and are dropped;
- ``subsample``: the M-step's training set, drawn from the rollout pool with the weights s*.
  The paper does not give its exact equation (Eq. 5); three readings are offered:
  ``sample`` (draw ``per_query`` rollouts, each by first drawing c ~ s*(·|x), then a rollout of c
  uniformly, without replacement while any are left), ``argmax`` (every rollout of the most likely c)
  and ``weight`` (every rollout, weighted s*(c|x) / n_c so each query's weights sum to 1).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

DECISIONS = ("cot", "code")


def success_rates(rollouts: Sequence[Mapping]) -> dict[str, dict[str, float | None]]:
    """Q̂(x, c) from rollouts with keys ``query``, ``decision`` and ``correct``."""
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: {c: [0, 0] for c in DECISIONS})
    for rollout in rollouts:
        tally = counts[rollout["query"]][rollout["decision"]]
        tally[0] += bool(rollout["correct"])
        tally[1] += 1
    return {query: {c: (wins / total if total else None) for c, (wins, total) in by_c.items()} for query, by_c in counts.items()}


def reference_strategy(policy: Mapping[str, float], values: Mapping[str, float | None], alpha: float) -> dict[str, float]:
    """s*(c|x) ∝ exp(α · π(c|x) · Q̂(x,c)); a decision without rollouts gets probability 0."""
    scores = {c: policy[c] * values[c] for c in DECISIONS if values.get(c) is not None}
    if not scores:
        raise ValueError("no decision has rollouts for this query")
    if math.isinf(alpha):
        best = max(scores.values())
        winner = next(c for c in DECISIONS if c in scores and scores[c] == best)  # DECISIONS lists CoT first
        return {c: float(c == winner) for c in DECISIONS}
    top = max(alpha * s for s in scores.values())
    weights = {c: (math.exp(alpha * scores[c] - top) if c in scores else 0.0) for c in DECISIONS}
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


def keep_query(values: Mapping[str, float | None]) -> bool:
    """False when every rollout of the query failed: there is nothing to learn from it."""
    return any(v for v in values.values() if v is not None)


def decision_policy_from_rates(code_rate: float, smoothing: float = 0.05) -> dict[str, float]:
    """π(c|x) from a free-rollout code rate, kept away from 0 and 1 so no decision is ruled out."""
    code = min(max(code_rate, smoothing), 1 - smoothing)
    return {"cot": 1 - code, "code": code}


def decision_policy_from_logprobs(logprob_cot: float, logprob_code: float) -> dict[str, float]:
    """π(c|x) from the log-probabilities of the two decision prefixes, renormalised over the pair."""
    top = max(logprob_cot, logprob_code)
    cot, code = math.exp(logprob_cot - top), math.exp(logprob_code - top)
    return {"cot": cot / (cot + code), "code": code / (cot + code)}


def subsample(
    rollouts: Sequence[Mapping], strategies: Mapping[str, Mapping[str, float]], rule: str, per_query: int, rng: random.Random
) -> list[tuple[Mapping, float]]:
    """(rollout, weight) pairs for the M-step, for the queries in ``strategies`` (the kept ones)."""
    by_query: dict[str, dict[str, list[Mapping]]] = defaultdict(lambda: {c: [] for c in DECISIONS})
    for rollout in rollouts:
        if rollout["query"] in strategies:
            by_query[rollout["query"]][rollout["decision"]].append(rollout)
    chosen: list[tuple[Mapping, float]] = []
    for query, pools in by_query.items():
        strategy = strategies[query]
        if rule == "argmax":
            best = max(DECISIONS, key=lambda c: (strategy[c], c == "cot"))
            chosen += [(r, 1.0) for r in pools[best]]
        elif rule == "weight":
            chosen += [(r, strategy[c] / len(pools[c])) for c in DECISIONS for r in pools[c] if strategy[c] > 0]
        elif rule == "sample":
            remaining = {c: rng.sample(pools[c], len(pools[c])) for c in DECISIONS}
            for _ in range(per_query):
                available = [c for c in DECISIONS if remaining[c] and strategy[c] > 0]
                if not available:
                    break
                decision = rng.choices(available, weights=[strategy[c] for c in available])[0]
                chosen.append((remaining[decision].pop(), 1.0))
        else:
            raise ValueError(f"subsampling rule must be sample, argmax or weight, not {rule!r}")
    return chosen


def em_advantages(rollouts: Sequence[Mapping], kind: str) -> list[float | None]:
    """M-step advantages: ``sign`` gives ±1; ``whiten`` gives clip((r - mean_q) / std_q, -2, 2) per query,
    1 when all of a query's samples are right, and None (drop) when all are wrong (AutoCode's options 2 and 3)."""
    if kind == "sign":
        return [1.0 if r["correct"] else -1.0 for r in rollouts]
    if kind != "whiten":
        raise ValueError(f"advantage must be sign or whiten, not {kind!r}")
    groups: dict[str, list[float]] = defaultdict(list)
    for rollout in rollouts:
        groups[rollout["query"]].append(float(bool(rollout["correct"])))
    advantages: list[float | None] = []
    for rollout in rollouts:
        rewards = groups[rollout["query"]]
        mean = sum(rewards) / len(rewards)
        if mean == 1.0:
            advantages.append(1.0)
        elif mean == 0.0:
            advantages.append(None)
        else:
            std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
            advantages.append(max(-2.0, min(2.0, (float(bool(rollout["correct"])) - mean) / std)))
    return advantages
