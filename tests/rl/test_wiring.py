"""Fast tests of what train-em and train-rl pass into the functions their other tests test (issue 21).

Each fails on a one-line mis-wiring that every other fast test let through: a rollout graded against
another problem's gold, iteration 1 reading iteration 0's π_old, a learning-rate schedule built from the
wrong fields, config fields that never reach the rollout engine, rollout seeds that repeat from step to step.
The trainers run for real on a tiny random model and grade with harness.grading; only the text the model
writes is scripted, so the right verdict of every rollout is known. tests/rl/mutation_check.py applies the
mis-wirings (docs/em.md's mutation table lists which test catches which).
"""

from __future__ import annotations

import json
import math
import re
from contextlib import contextmanager

import pytest
import torch

from harness.em.config import EMConfig
from harness.em.trainer import EMTrainer
from harness.eval.attempts import response_ids
from harness.eval.rollout import RolloutEngine
from harness.models.stopping import finished_generation
from harness.models.types import ModelBackend
from harness.rl.trainer import RLTrainer

from .em_records import em_record
from .test_em_trainer import optimiser_learning_rates
from .test_trainer import config as rl_config
from .test_trainer import task_file, tiny_model_dir  # noqa: F401 - shared fixtures

QUESTION = re.compile(r"What is (\d+) \+ \1\?")
CODE_PREFIX = "Let's write a program.\n"
# Values no default has, so a field replaced by a default or a constant on its way to the engine shows.
UNUSUAL = dict(max_tool_calls=3, sandbox_timeout=1.7, max_tokens=61, temperature=0.7, top_p=0.83, seed=5)


def right_answer(question: str) -> int:
    """The gold of the task file's question "What is a + a?" (tests/rl/test_trainer.py): 2a."""
    return 2 * int(QUESTION.findall(question)[-1])


def boxed(text: str) -> int | None:
    found = re.findall(r"\\boxed\{(\d+)\}", text)
    return int(found[-1]) if found else None


class ArithmeticScript(ModelBackend):
    """A sampler that answers the prompt's question: right (2a), or wrong (2a + 1) when the code prefix was
    forced, after a filler that grows with the request's seed (so rollouts of different seeds differ in
    length). Records what it is asked: the sampling parameters of each call and each request's seed."""

    def __init__(self, tokenizer) -> None:
        self.name, self.tokenizer, self.params, self.seeds = "script", tokenizer, [], []

    def generate(self, requests, params):
        self.params.append(params)
        outputs = []
        for request in requests:
            self.seeds.append(request.seed)
            written = self.decode(request.prompt_ids)
            answer = right_answer(written) + (CODE_PREFIX in written)
            ids = self.encode(" so" * (request.seed % 4) + f" The answer is \\boxed{{{answer}}}.") + [self.tokenizer.eos_token_id]
            cut = len(ids) > params.max_new_tokens
            outputs.append(finished_generation(self.tokenizer, ids[: params.max_new_tokens], "length" if cut else "eos", None))
        return outputs


class EngineSpy(RolloutEngine):
    """The real RolloutEngine, remembering how the trainer built it and the seeds of each run."""

    built: list = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seed_batches = []
        EngineSpy.built.append(self)

    def run(self, prompts, seeds, prefixes=None):
        self.seed_batches.append(list(seeds))
        return super().run(prompts, seeds, prefixes)


def engine_seeds(engines) -> set:
    return {seed for engine in engines for batch in engine.seed_batches for seed in batch}


# ---------------------------------------------------------------- train-em: two iterations, recorded
@pytest.fixture(scope="module")
def em_run(tiny_model_dir, task_file, tmp_path_factory):  # noqa: F811
    """Two EM iterations over all six queries (so each query is rolled out in both) with UNUSUAL rollout
    settings, the scripted sampler and the real grader; records the engines, π_old per iteration and the
    ratio π/π_old of every M-step micro-batch."""
    import harness.em.mstep as mstep

    out = tmp_path_factory.mktemp("em-wiring")
    config = EMConfig.from_dict(dict(
        model=str(tiny_model_dir), task=str(task_file), iterations=2, queries_per_iteration=6, k=2, free_rollouts=1,
        content_labels="off", subsample="sample", samples_per_query=2, advantage="sign", batch_size=4, micro_batch_size=4,
        kl_weight=0.1, learning_rate=1e-2, save_every=10, output_dir=str(out), device="cpu", **UNUSUAL))
    trainer = EMTrainer(config)
    script = ArithmeticScript(trainer.tokenizer)
    trainer.rollout_backend.backend = lambda: script
    seen = {"pi_old": [], "ratios": [], "engines": {}, "esteps": {}}
    pi_old, loss = mstep.MStep._pi_old, mstep.mstep_loss

    def recorded_pi_old(self, iteration, rollouts):
        old = pi_old(self, iteration, rollouts)
        seen["pi_old"].append((iteration, rollouts, old))
        return old

    def recorded_loss(logprobs, old_logprobs, advantages, mask, *args, **kwargs):
        gap = (logprobs - old_logprobs).detach() * mask
        seen["ratios"].append((seen["pi_old"][-1][0], float(gap.abs().max()), float(gap.sum() / mask.sum())))
        return loss(logprobs, old_logprobs, advantages, mask, *args, **kwargs)

    estep = EMTrainer.estep

    def recorded_estep(self, iteration, sandbox):
        EngineSpy.built = []
        seen["esteps"][iteration] = estep(self, iteration, sandbox)
        seen["engines"][iteration] = EngineSpy.built
        return seen["esteps"][iteration]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("harness.eval.rollout.RolloutEngine", EngineSpy)
        patch.setattr(mstep.MStep, "_pi_old", recorded_pi_old)
        patch.setattr(mstep, "mstep_loss", recorded_loss)
        patch.setattr(EMTrainer, "estep", recorded_estep)
        reports = trainer.train()
    records = {i: [json.loads(line) for line in (out / f"iter-{i + 1}" / "samples.jsonl").read_text().splitlines()] for i in (0, 1)}
    return {"out": out, "reports": reports, "records": records, "script": script, **seen}


def test_em_estep_grades_each_rollout_against_its_own_gold(em_run):
    """Every record's verdict is its response against its own query's gold: the forced-CoT and free answers
    (right for their query, wrong for every other) are correct, the forced-code ones (2a + 1) wrong; so
    Q̂(x) = {cot: 1, code: 0} for every query, none is dropped, and the training set is the right answers."""
    for iteration, records in em_run["records"].items():
        assert len(records) == 6 * (2 + 2 + 1)
        for record in records:
            question = em_run["script"].decode(record["prompt_ids"])
            assert boxed(record["response"]) == right_answer(question) + (record["decision"] == "code"), record["response"]
            assert record["correct"] == (record["decision"] != "code"), (iteration, record["doc_id"], record["response"])
        estep = em_run["esteps"][iteration]
        assert len(estep["values"]) == 6
        assert all(values == {"cot": 1.0, "code": 0.0} for values in estep["values"].values()), estep["values"]
        assert estep["training"] and all(r["correct"] and r["decision"] == "cot" for r, _ in estep["training"])
        assert em_run["reports"][iteration]["em/dropped_share"] == 0.0


def test_em_each_iteration_uses_its_own_pi_old(em_run):
    """π_old is the E-step model of *this* iteration on *this* iteration's samples: one row per training
    sample, as long as its prompt + response minus one, and π/π_old exactly 1 on the first M-step step of
    every iteration (the weights have not moved yet; iteration 1's differ from iteration 0's), above 1 on the
    later steps (the right answers it trains on have become more likely)."""
    assert [iteration for iteration, _, _ in em_run["pi_old"]] == [0, 1]
    for iteration, rollouts, old in em_run["pi_old"]:
        assert [len(row) for row in old] == [len(r["prompt_ids"]) + len(response_ids(r)) - 1 for r in rollouts], iteration
        saved = torch.load(em_run["out"] / f"iter-{iteration + 1}" / "pi_old.pt")
        assert len(saved) == len(old) and all(torch.equal(a, b) for a, b in zip(saved, old))
    for iteration in (0, 1):
        steps = [(largest, mean) for seen, largest, mean in em_run["ratios"] if seen == iteration]
        assert len(steps) == 3 and steps[0][0] < 1e-5, (iteration, steps)  # one micro-batch per step: the first is the first step
        # Every training sample is a right answer (advantage +1), so the later steps see them made more likely
        # than under π_old: the ratio check can fail, and a flipped policy-gradient sign fails here.
        assert all(mean > 1e-3 for _, mean in steps[1:]), (iteration, steps)


def test_em_rollout_settings_reach_the_engine_and_the_sampler(em_run):
    """max_tool_calls, max_tokens and sandbox_timeout reach each E-step's engine, temperature and top_p the
    sampler, and the rollout seeds differ between iterations (each query is rolled out in both)."""
    engines = em_run["engines"]
    assert sorted(engines) == [0, 1]
    for engine in engines[0] + engines[1]:
        assert (engine.max_tool_calls, engine.max_tokens, engine.tools) == (UNUSUAL["max_tool_calls"], UNUSUAL["max_tokens"], True)
        assert engine.sandbox.limits.timeout_s == UNUSUAL["sandbox_timeout"]
    params = em_run["script"].params
    assert {(p.temperature, p.top_p) for p in params} == {(UNUSUAL["temperature"], UNUSUAL["top_p"])}
    assert max(p.max_new_tokens for p in params) == UNUSUAL["max_tokens"]  # a free rollout's first round has the whole budget
    first, second = engine_seeds(engines[0]), engine_seeds(engines[1])
    assert len(first) == len(second) == 6 * (2 + 2 + 1)  # distinct within an iteration
    assert not first & second
    sampled = em_run["script"].seeds  # one round per rollout: the sampler sees 60 distinct seeds
    assert len(sampled) == len(set(sampled)) == 2 * 6 * (2 + 2 + 1)


def test_em_learning_rate_schedule_is_the_one_the_optimiser_steps_with(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    """8 one-sample steps, 25% warm-up (2 steps), cosine: the optimiser's learning rate at each step is
    peak · (1/2, 1, then ½(1 + cos(π·(s-2)/6)) for s = 2..7); every M-step restarts it."""
    peak = 1e-2
    trainer = EMTrainer(EMConfig.from_dict(dict(
        model=str(tiny_model_dir), task=str(task_file), advantage="sign", kl_weight=0.0, decision_weight=0.0,
        learning_rate=peak, lr_schedule="cosine", warmup_ratio=0.25, batch_size=1, micro_batch_size=1, save_every=100,
        output_dir=str(tmp_path), device="cpu")))
    used = optimiser_learning_rates(monkeypatch)
    prompt = trainer.backend.encode("What is 2 + 2?")
    training = [(em_record("q", prompt, trainer.backend.encode(f"It is {n}."), correct=n == 4), 1.0) for n in range(8)]
    expected = [peak / 2, peak] + [peak * 0.5 * (1 + math.cos(math.pi * s / 6)) for s in range(6)]
    for iteration in (0, 1):
        (tmp_path / f"iter-{iteration + 1}").mkdir()
        used.clear()
        trainer.mstep.run(iteration, {"training": training, "strategies": {"q": {"cot": 1.0, "code": 0.0}}})
        assert used == pytest.approx(expected, rel=1e-9), (iteration, used)


# ---------------------------------------------------------------- train-rl
def neighbour_script(monkeypatch) -> None:
    """Rollouts TRL trains on, one per prompt row: even rows answer their own question right, odd rows give
    the right answer of the next row's question (right for that problem, wrong for their own)."""

    def rollout(self, prompts, trainer):
        tokenizer = trainer.processing_class
        texts = [f"The answer is \\boxed{{{right_answer(prompts[(row + row % 2) % len(prompts)])}}}." for row in range(len(prompts))]
        completion_ids = [tokenizer.encode(text, add_special_tokens=False) for text in texts]
        return {"prompt_ids": [tokenizer.encode(q, add_special_tokens=False) for q in prompts], "completion_ids": completion_ids,
                "logprobs": None, "env_mask": [[1] * len(ids) for ids in completion_ids], "response_text": texts,
                "used_code": [False] * len(prompts), "tool_calls": [0] * len(prompts), "tool_failures": [0] * len(prompts)}

    monkeypatch.setattr("harness.rl.rollouts.RolloutFunc.__call__", rollout)


def lr_recorder(monkeypatch) -> list:
    """The learning rate of every optimiser step TRL takes, read from the optimiser just before it steps."""
    from transformers import TrainerCallback

    used = []

    class Recorder(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
            used.append(optimizer.param_groups[0]["lr"])

    build = RLTrainer.build

    def build_with_recorder(self, history, on_step):
        grpo = build(self, history, on_step)
        grpo.add_callback(Recorder())
        return grpo

    monkeypatch.setattr(RLTrainer, "build", build_with_recorder)
    return used


def test_rl_rewards_grade_each_row_against_its_own_gold_and_the_schedule_is_stepped(tiny_model_dir, task_file, tmp_path,  # noqa: F811
                                                                                   monkeypatch):
    """Six steps with the real Reward and grader: the rewards of every group are [1, 0] (the odd row's answer
    is its neighbour's gold, so grading against a shifted gold column flips it), and the rewarded rows gain
    probability over the others; the optimiser's learning rate is peak · (1/2, 1, then ½(1 + cos(π·(s-2)/4))
    for s = 2..5) with 2 warm-up steps and a cosine decay."""
    from transformers import AutoModelForCausalLM

    from harness.rl.rollouts import Reward

    from .test_grpo_signal import answer_logprob

    neighbour_script(monkeypatch)
    used = lr_recorder(monkeypatch)
    rewards = []
    call = Reward.__call__

    def recorded(self, prompts, completions, answer, response_text, *args, **kwargs):
        given = call(self, prompts, completions, answer, response_text, *args, **kwargs)
        rewards.append([(prompt, text, reward) for prompt, text, reward in zip(prompts, response_text, given, strict=True)])
        return given

    monkeypatch.setattr(Reward, "__call__", recorded)
    peak = 1e-3
    trainer = RLTrainer(rl_config(tiny_model_dir, task_file, tmp_path, steps=6, learning_rate=peak, lr_schedule="cosine",
                                  warmup_steps=2, save_every=100))
    history = trainer.train()
    assert len(rewards) == 6
    for batch in rewards:
        assert [reward for _, _, reward in batch] == [1.0, 0.0] * 2, batch
        for prompt, text, reward in batch:
            assert reward == float(boxed(text) == right_answer(prompt))
    assert [row["reward"] for row in history] == [0.5] * 6
    # The rewarded rows became more likely than the unrewarded ones (a flipped loss sign fails here).
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    moved = {1.0: [], 0.0: []}
    for prompt, text, reward in (row for batch in rewards for row in batch):
        moved[reward].append(answer_logprob(trainer.model, trainer.tokenizer, prompt, text)
                             - answer_logprob(start, trainer.tokenizer, prompt, text))
    assert sum(moved[1.0]) / len(moved[1.0]) > sum(moved[0.0]) / len(moved[0.0]), moved
    assert used == pytest.approx([peak / 2, peak] + [peak * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)], rel=1e-9)


def test_rl_rollout_settings_reach_the_engine_and_the_sampler(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    """Two steps with UNUSUAL settings through our rollout function: the engine gets max_tool_calls,
    max_tokens and the sandbox's timeout, the sampler temperature, top_p and the token budget, and each step
    samples with seeds of its own (distinct rows within a step, and new seeds at the next step)."""
    from harness.rl.rollouts import RolloutFunc

    script = {}

    @contextmanager
    def scripted_backend(self, trainer):
        script.setdefault("backend", ArithmeticScript(trainer.processing_class))
        yield script["backend"]

    EngineSpy.built = []
    monkeypatch.setattr("harness.eval.rollout.RolloutEngine", EngineSpy)
    monkeypatch.setattr(RolloutFunc, "backend", scripted_backend)
    trainer = RLTrainer(rl_config(tiny_model_dir, task_file, tmp_path, steps=2, save_every=100, **UNUSUAL))
    history = trainer.train()
    assert [row["reward"] for row in history] == [1.0, 1.0]  # the script answers right: graded against the right gold
    assert len(EngineSpy.built) == 2
    for engine in EngineSpy.built:
        assert (engine.max_tool_calls, engine.max_tokens) == (UNUSUAL["max_tool_calls"], UNUSUAL["max_tokens"])
        assert engine.sandbox.limits.timeout_s == UNUSUAL["sandbox_timeout"]
    params = script["backend"].params
    assert ({(p.temperature, p.top_p, p.max_new_tokens) for p in params}
            == {(UNUSUAL["temperature"], UNUSUAL["top_p"], UNUSUAL["max_tokens"])})
    first, second = (engine_seeds([engine]) for engine in EngineSpy.built)
    assert len(first) == len(second) == 4 and not first & second
    sampled = script["backend"].seeds  # one round per rollout: the sampler sees 8 distinct seeds
    assert len(sampled) == len(set(sampled)) == 2 * 4
