"""The E-step: estimate how well each decision works per query, form the reference strategy, pick training data.

The latent decision c is ``"cot"`` or ``"code"``. For each query the E-step has K rollouts under each
decision (forced by a response prefix); from them:

- ``content_labels``: a rollout's decision is what it did, not what it was told: a rollout forced
  into CoT that still executed code is code, one forced into code that ran none is CoT (v1 labels
  every response by its content). ``relabel``
  moves such rollouts to the decision they took, ``drop`` discards them, ``off`` keeps the forced label;
- ``success_rates``: Q̂(x, c) = correct / rollouts under c (None when c has no rollouts);
- ``decision_policy``: π(c|x), by one of the paper's readings (``DECISION_RULES``):

  - ``q_argmax`` (the released v1 code, the default): s* = argmax_c Q̂(x, c) alone, ties to CoT;
    π plays no part (it is reported only);
  - ``pi_q_free``: s* ∝ exp(α · π · Q̂) with π the query's free-rollout code rate (smoothed away from 0, 1);
  - ``pi_q_prefix_mean``: the same with π from the *mean* per-token log-probability of each decision
    prefix, renormalised over the two. The summed log-probability would compare prefixes of different
    lengths (8 vs 16 tokens), which on real models gives π(code) ≈ 1e-21, so code would win only where
    every CoT rollout failed;

- ``reference_strategy``: s*(c|x) ∝ exp(α · π(c|x) · Q̂(x, c)); α = ∞ is the hard argmax (AutoCode v1),
  ties going to CoT (code costs calls and tokens);
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
DECISION_RULES = ("q_argmax", "pi_q_free", "pi_q_prefix_mean")
CONTENT_LABELS = ("relabel", "drop", "off")
VALUE_ONLY = {"cot": 1.0, "code": 1.0}  # π ≡ 1: with α = ∞, s* is the argmax of Q̂ alone (q_argmax)


def content_labels(rollouts: Sequence[Mapping], mode: str) -> list[dict]:
    """Forced rollouts labelled by what they did (``used_code``); the forced label stays in ``forced_decision``."""
    if mode not in CONTENT_LABELS:
        raise ValueError(f"content_labels must be one of {', '.join(CONTENT_LABELS)}, not {mode!r}")
    labelled = []
    for rollout in rollouts:
        did = "code" if rollout["used_code"] else "cot"
        if mode == "off" or did == rollout["decision"]:
            labelled.append(dict(rollout))
        elif mode == "relabel":
            labelled.append({**rollout, "decision": did, "forced_decision": rollout["decision"]})
    return labelled


def success_rates(rollouts: Sequence[Mapping]) -> dict[str, dict[str, float | None]]:
    """Q̂(x, c) from rollouts with keys ``doc_id`` (the query), ``decision`` and ``correct``."""
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: {c: [0, 0] for c in DECISIONS})
    for rollout in rollouts:
        tally = counts[rollout["doc_id"]][rollout["decision"]]
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
    """π(c|x) from log-probabilities of the two decision prefixes (per-token means for ``pi_q_prefix_mean``),
    renormalised over the pair."""
    top = max(logprob_cot, logprob_code)
    cot, code = math.exp(logprob_cot - top), math.exp(logprob_code - top)
    return {"cot": cot / (cot + code), "code": code / (cot + code)}


def subsample(
    rollouts: Sequence[Mapping], strategies: Mapping[str, Mapping[str, float]], rule: str, per_query: int, rng: random.Random
) -> list[tuple[Mapping, float]]:
    """(rollout, weight) pairs for the M-step, for the queries in ``strategies`` (the kept ones)."""
    by_query: dict[str, dict[str, list[Mapping]]] = defaultdict(lambda: {c: [] for c in DECISIONS})
    for rollout in rollouts:
        if rollout["doc_id"] in strategies:
            by_query[rollout["doc_id"]][rollout["decision"]].append(rollout)
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
        groups[rollout["doc_id"]].append(float(bool(rollout["correct"])))
    advantages: list[float | None] = []
    for rollout in rollouts:
        rewards = groups[rollout["doc_id"]]
        mean = sum(rewards) / len(rewards)
        if mean == 1.0:
            advantages.append(1.0)
        elif mean == 0.0:
            advantages.append(None)
        else:
            std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
            advantages.append(max(-2.0, min(2.0, (float(bool(rollout["correct"])) - mean) / std)))
    return advantages
