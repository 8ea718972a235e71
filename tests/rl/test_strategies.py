"""Each strategy's equation on hand-made rollouts (the exact numbers it must produce), and the wiring: a
`train-rl` step with a strategy trains on the shaped advantages, not on plain GRPO's."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from harness.rl.strategies import RolloutBatch, build_strategy
from harness.rl.strategies.adatir import AdaTIR
from harness.rl.strategies.hook import shape_output
from harness.rl.strategies.otc import OTC, tool_reward
from harness.rl.strategies.roc import ResampleOnCorrect
from harness.rl.trainer import RLTrainer

from .test_trainer import config as rl_config
from .test_trainer import task_file, tiny_model_dir  # noqa: F401 - shared fixtures
from .test_wiring import right_answer


def batch(correct, calls, failures=None, max_tool_calls=2, seed=0) -> RolloutBatch:
    return RolloutBatch(list(correct), list(calls), list(failures or [0] * len(calls)), group_size=len(correct),
                        max_tool_calls=max_tool_calls, seed=seed)


# ------------------------------------------------------------------ OTC-GRPO
def test_otc_rewards_the_fewest_calls_that_solve_the_problem():
    """n = 1 (the fewest calls among the right rollouts): m = 1 gets sin(π/2) = 1, m = 2 gets f = 4/3 and
    sin(2π/3) = √3/2, m = 3 gets f = 3/2 and sin(3π/4) = √2/2; the wrong rollout gets 0."""
    shaped = OTC().shape(batch([True, True, True, False], [1, 2, 3, 0]))
    assert shaped.rewards == pytest.approx([1.0, math.sqrt(3) / 2, math.sqrt(2) / 2, 0.0])
    assert shaped.correct_advantage_floor is None


def test_otc_zero_call_case():
    """A right rollout without code sets n = 0: it gets 1 (m = n = 0); a right one with 2 cells gets
    cos(2π/5) ≈ 0.309 (c = 1); wrong ones 0 whatever they called."""
    shaped = OTC().shape(batch([True, True, False, False], [0, 2, 1, 0]))
    assert shaped.rewards == pytest.approx([1.0, math.cos(2 * math.pi / 5), 0.0, 0.0])
    assert tool_reward(1, 0) == pytest.approx(0.5)  # cos(π/3)
    assert OTC().shape(batch([False] * 4, [0, 1, 2, 3])).rewards == [0.0] * 4  # no right rollout, no n


def test_otc_groups_are_shaped_apart():
    two = RolloutBatch([True, True, True, True], [2, 1, 0, 3], [0] * 4, group_size=2, max_tool_calls=4)
    assert OTC().shape(two).rewards == pytest.approx([math.sin(math.pi * (4 / 3) / 2), 1.0, 1.0, math.cos(3 * math.pi / 7)])


# ------------------------------------------------------------------ AdaTIR
def test_adatir_penalises_tool_calls_only_on_easy_groups():
    """φ = 1/4 < 1/2: right rollouts pay λ·sin(π/2 · N/N_max) with λ = 1/2, N_max = 2: one cell costs
    0.5·sin(π/4) ≈ 0.354, two cost 0.5; φ = 3/4 (hard): no penalty."""
    easy = AdaTIR().shape(batch([True, True, True, False], [1, 2, 0, 2]))
    assert easy.rewards == pytest.approx([1 - 0.5 * math.sin(math.pi / 4), 0.5, 1.0, 0.0])
    assert AdaTIR().shape(batch([True, False, False, False], [2, 2, 0, 0])).rewards == [1.0, 0.0, 0.0, 0.0]
    assert easy.correct_advantage_floor == 0.0


def fake_trainer(rollouts: RolloutBatch, shaped):
    return SimpleNamespace(shaping=(rollouts, shaped),
                           accelerator=SimpleNamespace(process_index=0, gather=lambda t: t.reshape(1)))


def test_adatir_sign_reversal_a_tool_penalty_never_makes_a_right_rollout_negative():
    """All four right, one with two cells: rewards [1, 0.5, 1, 1]; GRPO's group advantages (mean 0.875,
    std 0.25) are [0.5, -1.5, 0.5, 0.5]: the penalty alone made a right answer look bad. CAS lifts it to 0."""
    rollouts = batch([True, True, True, True], [0, 2, 0, 0])
    shaped = AdaTIR().shape(rollouts)
    assert shaped.rewards == [1.0, 0.5, 1.0, 1.0]
    rewards = torch.tensor(shaped.rewards)
    grpo = (rewards - rewards.mean()) / rewards.std()
    assert grpo.tolist() == pytest.approx([0.5, -1.5, 0.5, 0.5])
    output = shape_output(fake_trainer(rollouts, shaped), {"advantages": grpo, "completion_mask": torch.ones(4, 3)})
    assert output["advantages"].tolist() == pytest.approx([0.5, 0.0, 0.5, 0.5])


def test_adatir_leaves_wrong_rollouts_their_negative_advantage():
    rollouts = batch([True, False, True, False], [2, 0, 0, 1])
    shaped = AdaTIR().shape(rollouts)
    output = shape_output(fake_trainer(rollouts, shaped), {"advantages": torch.tensor([-0.2, -1.0, 1.0, -0.5]),
                                                            "completion_mask": torch.ones(4, 3)})
    assert output["advantages"].tolist() == pytest.approx([0.0, -1.0, 1.0, -0.5])


# ------------------------------------------------------------------ GRPO-RoC
def test_roc_keeps_the_cleanest_right_rollouts_and_the_share_of_wrong_ones():
    """2G = 8 rollouts, 4 kept: 4 of 8 right, so 2 right are kept, the cleanest: rollouts 1 (1 cell, none
    failed: p_err 0) and 3 (3 cells, none failed: 0), not 0 (1 of 2 failed: 0.5) or 2 (no cell: 0.5). Two of
    the four wrong ones are kept at random."""
    rollouts = batch([True] * 4 + [False] * 4, [2, 1, 0, 3, 1, 1, 0, 0], [1, 0, 0, 0, 1, 0, 0, 0], seed=3)
    rewards = ResampleOnCorrect().shape(rollouts).rewards
    kept = [i for i, r in enumerate(rewards) if not math.isnan(r)]
    assert [i for i in kept if i < 4] == [1, 3] and len([i for i in kept if i >= 4]) == 2
    assert [rewards[i] for i in kept] == [1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize(("right", "kept_right"), [(0, 0), (1, 1), (3, 2), (5, 3), (8, 4)])
def test_roc_keeps_the_group_share_of_right_rollouts(right, kept_right):
    rollouts = batch([True] * right + [False] * (8 - right), [1] * 8)
    rewards = ResampleOnCorrect().shape(rollouts).rewards
    assert sum(r == 1.0 for r in rewards) == kept_right and sum(not math.isnan(r) for r in rewards) == 4


def test_roc_takes_dropped_rollouts_out_of_the_loss():
    """Of two right rollouts one is kept (no code: p_err 0.5, ahead of the one whose only cell failed: 1), and
    one of the two wrong ones; the dropped two lose their tokens from the loss and from TRL's token count."""
    rollouts = batch([True, True, False, False], [0, 1, 0, 0], [0, 1, 0, 0])
    shaped = ResampleOnCorrect().shape(rollouts)
    assert shaped.rewards[0] == 1.0 and math.isnan(shaped.rewards[1])
    output = shape_output(fake_trainer(rollouts, shaped), {"advantages": torch.zeros(4), "completion_mask": torch.ones(4, 3)})
    dropped = [math.isnan(r) for r in shaped.rewards]
    assert output["completion_mask"].sum(dim=1).tolist() == [0.0 if d else 3.0 for d in dropped]
    assert output["num_items_in_batch"].item() == 6


def test_strategies_refuse_what_they_cannot_carry(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    from harness.rl.config import RLConfig

    with pytest.raises(ValueError, match="format_reward and tool_reward"):
        RLTrainer(rl_config(tiny_model_dir, task_file, tmp_path / "out", strategy="otc", format_reward=0.1))
    assert not (tmp_path / "out").exists()  # refused before the run folder was touched
    with pytest.raises(ValueError, match="group_size must be even"):
        build_strategy(RLConfig.from_dict({"strategy": "roc", "group_size": 3}))
    assert build_strategy(RLConfig.from_dict({})) is None


# ------------------------------------------------------------------ wiring into TRL
# Per group of four: right without code, right with two cells (one failed), right with one cell, wrong with one.
SCRIPT = [(True, 0, 0), (True, 2, 1), (True, 1, 0), (False, 1, 0)]


def scripted_rollouts(monkeypatch) -> dict:
    """Rollouts TRL trains on, each with a text of its own so the loss inputs can be traced back to it."""
    texts = {}

    def rollout(self, prompts, trainer):
        tokenizer = trainer.processing_class
        rows = [SCRIPT[row % len(SCRIPT)] for row in range(len(prompts))]
        answers = [right_answer(q) + (not right) for q, (right, _, _) in zip(prompts, rows)]
        written = [f"{'so ' * (row % 4)}The answer is \\boxed{{{a}}}." for row, a in enumerate(answers)]
        ids = [tokenizer.encode(text, add_special_tokens=False) for text in written]
        for row, (text, (right, calls, failed)) in enumerate(zip(written, rows)):
            texts[tuple(ids[row])] = (row % 4, right, calls, failed)
        return {"prompt_ids": [tokenizer.encode(q, add_special_tokens=False) for q in prompts], "completion_ids": ids,
                "logprobs": None, "env_mask": [[1] * len(i) for i in ids], "response_text": written,
                "used_code": [calls > 0 for _, calls, _ in rows], "tool_calls": [calls for _, calls, _ in rows],
                "tool_failures": [failed for _, _, failed in rows]}

    monkeypatch.setattr("harness.rl.rollouts.RolloutFunc.__call__", rollout)
    return texts


def trained_advantages(strategy, model_dir, task, out, monkeypatch, history=None) -> dict[int, list[tuple[float, float]]]:
    """One step: per place in the group, the (advantage, loss tokens) of each row the loss saw; the step's
    metrics go to ``history`` when given."""
    from trl import GRPOTrainer

    from harness.rl.grpo import HarnessGRPOTrainer

    texts = scripted_rollouts(monkeypatch)
    seen: dict[int, list] = {}
    compute = GRPOTrainer._compute_loss  # TRL's own, not an earlier call's recorder

    def recording(self, model, inputs):
        pad = self.processing_class.pad_token_id
        for ids, advantage, mask in zip(inputs["completion_ids"].tolist(), inputs["advantages"].flatten().tolist(),
                                        inputs["completion_mask"].sum(dim=1).tolist()):
            while ids and ids[-1] == pad:
                ids.pop()
            place = next(texts[key][0] for key in texts if list(key) == ids[: len(key)] and len(ids) == len(key))
            seen.setdefault(place, []).append((advantage, mask))
        return compute(self, model, inputs)

    monkeypatch.setattr(HarnessGRPOTrainer, "_compute_loss", recording)
    metrics = RLTrainer(rl_config(model_dir, task, out, steps=1, group_size=4, prompts_per_step=2, micro_batch_size=2,
                                  max_tool_calls=2, strategy=strategy, save_every=100)).train()
    if history is not None:
        history += metrics
    return seen


def grpo(rewards: list[float]) -> list[float]:
    """TRL's group advantage: (r - mean) / (std + 1e-4), std with Bessel's correction."""
    values = torch.tensor(rewards, dtype=torch.float32)
    return ((values - values.mean()) / (values.std() + 1e-4)).tolist()


def test_otc_changes_the_advantages_trl_trains_on(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    """Plain GRPO sees rewards [1, 1, 1, 0]; OTC (n = 0: the right rollout without code) gives
    [1, cos(2π/5), cos(π/3), 0], and those are the advantages in the loss."""
    plain = trained_advantages("none", tiny_model_dir, task_file, tmp_path / "none", monkeypatch)
    otc = trained_advantages("otc", tiny_model_dir, task_file, tmp_path / "otc", monkeypatch)
    expected_plain, expected_otc = grpo([1, 1, 1, 0]), grpo([1, math.cos(2 * math.pi / 5), 0.5, 0])
    for place in range(4):
        assert plain[place] and all(a == pytest.approx(expected_plain[place], abs=1e-5) for a, _ in plain[place])
        assert otc[place] and all(a == pytest.approx(expected_otc[place], abs=1e-5) for a, _ in otc[place])


def test_roc_and_adatir_change_what_trl_trains_on(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    """RoC keeps 2 of 4: round(3·2/4) = 2 right ones, the cleanest (places 0 and 2: p_err 0.5 for no code ties
    with place 1's 1/2 failed cells, the earlier wins; place 2's single clean cell is 0), so no wrong one and
    all kept rewards are 1: advantages 0, and places 1 and 3 leave the loss (no tokens). AdaTIR (φ = 1/4, easy):
    rewards [1, 0.5, 1 - 0.5·sin(π/4), 0] with the right ones' advantages floored at 0."""
    history = []
    roc = trained_advantages("roc", tiny_model_dir, task_file, tmp_path / "roc", monkeypatch, history)
    assert history[0]["strategy/kept"] == 0.5 and history[0]["strategy/reward"] == 1.0
    assert roc[1] and roc[3] and all(mask == 0 for place in (1, 3) for _, mask in roc[place])
    assert roc[0] and roc[2] and all(mask > 0 and a == pytest.approx(0.0, abs=1e-6) for place in (0, 2) for a, mask in roc[place])
    adatir = trained_advantages("adatir", tiny_model_dir, task_file, tmp_path / "adatir", monkeypatch)
    expected = grpo([1, 0.5, 1 - 0.5 * math.sin(math.pi / 4), 0])
    expected = [max(a, 0.0) if place < 3 else a for place, a in enumerate(expected)]
    for place in range(4):
        assert adatir[place] and all(a == pytest.approx(expected[place], abs=1e-5) for a, _ in adatir[place])
