"""The EM trainer end to end on a tiny random model: E-step files, the report, resume mid-M-step."""

from __future__ import annotations

import json

import pytest
import torch

from harness.em.config import PRESETS, EMConfig, preset
from harness.em.mstep import MStep
from harness.em.trainer import EMTrainer

from .test_trainer import task_file, tiny_model_dir  # noqa: F401 - shared fixtures


@pytest.fixture(autouse=True)
def length_grader(monkeypatch):
    """A random tiny model never answers right, so the real grader would fail every rollout and drop every
    query. This stand-in gives the E-step successes and failures (about half), so every M-step path runs, and
    still reads the gold: a response is right when its length plus half the gold is even. The task's golds are
    2a for a = 1..6, so neighbouring queries' golds give opposite verdicts on the same response and a rollout
    graded against another query's gold is seen. (The real grader's wiring is tested in test_wiring.py, with a
    scripted sampler.)"""
    import harness.grading

    monkeypatch.setattr(harness.grading, "grade_batch", length_grade_batch)


def length_grade_batch(items):
    """The verdicts of ``length_grader``."""
    from harness.grading.scorer import Grade

    verdicts = [(len(response) + int(gold) // 2) % 2 == 0 for response, gold, *_ in items]
    return [Grade(right, None, "correct" if right else "incorrect") for right in verdicts]


def config(model_dir, task, out, **overrides) -> EMConfig:
    values = dict(model=str(model_dir), task=str(task), iterations=1, queries_per_iteration=3, k=2, free_rollouts=1,
                  samples_per_query=3, subsample="weight", advantage="sign", batch_size=4, micro_batch_size=4,
                  max_tokens=10, max_tool_calls=1, learning_rate=1e-2, save_every=1, output_dir=str(out), device="cpu",
                  sandbox_timeout=2.0, alpha=1.0)
    return EMConfig.from_dict({**values, **overrides})


def test_one_iteration_writes_samples_policy_and_report(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    trainer = EMTrainer(config(tiny_model_dir, task_file, tmp_path))
    [report] = trainer.train()
    records = [json.loads(line) for line in (tmp_path / "iter-1" / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 3 * (2 + 2 + 1)
    assert {r["decision"] for r in records} == {"cot", "code", "free"}
    forced_code = [r for r in records if r["decision"] == "code"]
    assert all(r["response"].startswith("Let's write a program.") for r in forced_code)
    policy = json.loads((tmp_path / "iter-1" / "policy.json").read_text())
    assert all(abs(sum(p.values()) - 1) < 1e-6 for p in policy.values())
    for key in ("step", "reward", "reward_std", "completions/mean_length", "code_rate", "loss", "em/accuracy/all",
                "em/code_rate/all", "em/q_hat/cot", "em/q_hat/code", "em/dropped_share", "em/selection_accuracy",
                "em/training_samples", "em/mstep_steps"):
        assert key in report
    [logged] = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == report and (logged["step"], logged["em/iteration"]) == (1, 0)


def test_harness_score_reads_an_e_step_folder(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    """An E-step folder is a run folder: `harness score` re-grades it (the same grader gives the same
    verdicts) and writes results.json with one problem per query and every attempt of each."""
    from typer.testing import CliRunner

    from harness.cli import app

    EMTrainer(config(tiny_model_dir, task_file, tmp_path)).train()
    folder = tmp_path / "iter-1"
    stored = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    scored = CliRunner().invoke(app, ["score", str(folder)])
    assert scored.exit_code == 0, scored.output
    rescored = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert [(r["doc_id"], r["attempt"], r["correct"]) for r in rescored] == [(r["doc_id"], r["attempt"], r["correct"]) for r in stored]
    metrics = json.loads((folder / "results.json").read_text())["metrics"]
    assert metrics["problems"] == 3 and metrics["samples_per_problem"] == 2 + 2 + 1
    assert metrics["accuracy"] == pytest.approx(sum(r["correct"] for r in stored) / len(stored))


def test_an_over_long_prompt_in_the_e_step_is_refused_as_eval_refuses_it(tiny_model_dir, tmp_path):  # noqa: F811
    """A query whose prompt fills the model's context is not generated for: its attempts are recorded as
    incorrect with status prompt_too_long (as `harness eval` records them), and it gives Q̂, π and the
    training set nothing; the other queries are rolled out as usual."""
    from harness.sandbox import SandboxLimits, get_sandbox

    task = tmp_path / "sums.jsonl"
    questions = ["What is 1 + 1?", "What is 2 + 2? " + "Think hard. " * 4000, "What is 3 + 3?"]
    task.write_text("".join(json.dumps({"question": q, "answer": 2 * a}) + "\n" for a, q in enumerate(questions, start=1)))
    trainer = EMTrainer(config(tiny_model_dir, task, tmp_path / "run"))
    assert trainer.backend.context_length < 4000
    with get_sandbox("local", limits=SandboxLimits(timeout_s=2.0)) as sandbox:
        estep = trainer.estep(0, sandbox)
    long_id = trainer.samples[1].id
    refused = [r for r in estep["records"] if r["doc_id"] == long_id]
    assert len(refused) == 2 + 2 + 1
    assert all(r["status"] == "prompt_too_long" and r["correct"] is False and r["segments"] == [] for r in refused)
    assert all(r["segments"] for r in estep["records"] if r["doc_id"] != long_id)
    assert long_id not in estep["values"] and long_id not in estep["policy"]
    assert all(r["doc_id"] != long_id for r, _ in estep["training"])


def test_decision_cross_entropy_moves_the_prefix_probability(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    trainer = EMTrainer(config(tiny_model_dir, task_file, tmp_path, decision_weight=5.0, learning_rate=5e-2))
    prompts = {"q": trainer.backend.encode("What is 2 + 2?")}
    before = trainer.mstep.prefix_logprobs(prompts, grad=False)["q"]
    optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.05)
    for _ in range(3):
        logprobs = trainer.mstep.prefix_logprobs(prompts, grad=True)["q"]
        from harness.em.objective import decision_cross_entropy

        decision_cross_entropy(logprobs[None], torch.tensor([[0.0, 1.0]])).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = trainer.mstep.prefix_logprobs(prompts, grad=False)["q"]
    assert (after[1] - after[0]) > (before[1] - before[0])  # code prefix gained relative to the CoT prefix


def test_presets_and_unknowns():
    assert set(PRESETS) == {"tiny", "paper-7b"}
    assert preset("paper-7b").rho_cap == 1.2 and preset("tiny").alpha == float("inf")
    with pytest.raises(ValueError, match="unknown config keys"):
        EMConfig.from_dict({"alfa": 1})


def stop_at_optimiser_step(monkeypatch, number: int, run) -> None:
    """``run()`` stopped at its ``number``-th optimiser step, as a kill would stop it (the steps before it taken
    and checkpointed); the real optimiser step is back afterwards."""
    real_step, calls = MStep.optimiser_step, {"n": 0}

    def stop(self, *args):
        calls["n"] += 1
        if calls["n"] == number:
            raise KeyboardInterrupt
        return real_step(self, *args)

    monkeypatch.setattr(MStep, "optimiser_step", stop)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(MStep, "optimiser_step", real_step)


def optimiser_learning_rates(monkeypatch) -> list[float]:
    """The learning rate each later M-step optimiser step is taken with, appended as it is taken."""
    used, real_step = [], MStep.optimiser_step

    def recorded_step(self, items, old_rows, strategies, optimizer):
        used.append(optimizer.param_groups[0]["lr"])
        return real_step(self, items, old_rows, strategies, optimizer)

    monkeypatch.setattr(MStep, "optimiser_step", recorded_step)
    return used


def test_resume_in_the_middle_of_an_m_step_matches_an_uninterrupted_run(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    overrides = dict(batch_size=2, micro_batch_size=2, subsample="sample", samples_per_query=2, alpha=float("inf"))
    straight = EMTrainer(config(tiny_model_dir, task_file, tmp_path / "straight", **overrides))
    straight.train()
    steps_done = json.loads((tmp_path / "straight" / "metrics.jsonl").read_text())["em/mstep_steps"]
    assert steps_done >= 2

    interrupted = EMTrainer(config(tiny_model_dir, task_file, tmp_path / "resumed", **overrides))
    stop_at_optimiser_step(monkeypatch, 2, interrupted.train)
    resumed = EMTrainer(config(tiny_model_dir, task_file, tmp_path / "resumed", **overrides))
    resumed.train(resume=True)
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.allclose(a, b, atol=1e-5), name

