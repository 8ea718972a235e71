"""EM resume (issue 19, item 5): what a resume may change, and the E-step's draws per iteration."""

from __future__ import annotations

import json

import pytest

from harness.em.config import EMConfig
from harness.em.trainer import EMTrainer, estep_hash

from .em_records import em_record
from .test_em_trainer import config, length_grader, optimiser_learning_rates, stop_at_optimiser_step  # noqa: F401 - shared fixture
from .test_trainer import task_file, tiny_model_dir  # noqa: F401 - shared fixtures

CONSTANT = dict(lr_schedule="constant", warmup_ratio=0.0, batch_size=2, micro_batch_size=2, subsample="sample",
                samples_per_query=2, alpha=float("inf"))


def test_the_e_step_hash_covers_what_shapes_the_e_step_and_nothing_else():
    def changed(field, value) -> EMConfig:
        return EMConfig(**{"model": "m", "task": "t", field: value})

    base = EMConfig(model="m", task="t")
    assert EMConfig.RESUME_MAY_CHANGE <= EMConfig.OUTSIDE_ESTEP
    for field, value in (("learning_rate", 1e-3), ("device", "cpu"), ("kl_weight", 0.1), ("batch_size", 7), ("iterations", 9)):
        assert estep_hash(changed(field, value), 0) == estep_hash(base, 0), field
    for field, value in (("k", 3), ("temperature", 0.5), ("seed", 1), ("decision_rule", "pi_q_free"), ("samples_per_query", 2),
                         ("model", "other"), ("top_p", 0.5)):
        assert estep_hash(changed(field, value), 0) != estep_hash(base, 0), field
    assert estep_hash(base, 1) != estep_hash(base, 0)


def test_resume_with_a_new_learning_rate_and_device_keeps_the_e_step(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    stop_at_optimiser_step(monkeypatch, 2, EMTrainer(config(tiny_model_dir, task_file, tmp_path, **CONSTANT)).train)
    samples = (tmp_path / "iter-1" / "samples.jsonl").read_text()
    rates = optimiser_learning_rates(monkeypatch)
    resumed = EMTrainer(config(tiny_model_dir, task_file, tmp_path, **{**CONSTANT, "learning_rate": 4e-3, "device": "auto"}))
    resumed.train(resume=True, allow_config_change=True)
    assert rates and all(rate == pytest.approx(4e-3) for rate in rates)
    assert (tmp_path / "iter-1" / "samples.jsonl").read_text() == samples  # not generated again
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert provenance["resumes"][-1]["changed"] == {"device": ["cpu", "auto"], "learning_rate": [0.01, 0.004]}


def test_a_resume_that_changes_the_e_step_is_one_clear_error(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    stop_at_optimiser_step(monkeypatch, 2, EMTrainer(config(tiny_model_dir, task_file, tmp_path, **CONSTANT)).train)
    resumed = EMTrainer(config(tiny_model_dir, task_file, tmp_path, **{**CONSTANT, "temperature": 0.5}))
    with pytest.raises(ValueError, match=r"iter-1: iteration 1's E-step was made with other temperature; resume with") as error:
        resumed.train(resume=True, allow_config_change=True)
    assert "\n" not in str(error.value)


def test_a_run_of_the_earlier_layout_is_refused(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    (tmp_path / "iter-0").mkdir()
    (tmp_path / "provenance.json").write_text("{}")
    with pytest.raises(ValueError, match="counted from iter-0"):
        EMTrainer(config(tiny_model_dir, task_file, tmp_path)).train(resume=True)


def rollouts(trainer: EMTrainer, queries: int = 12) -> list[dict]:
    """Per query 3 CoT and 3 code rollouts, right and wrong, and a free one: every query kept, both decisions drawn from."""
    prompt = trainer.backend.encode("What is 2 + 2?")
    records = []
    for q in range(queries):
        for attempt, decision in enumerate(["cot"] * 3 + ["code"] * 3 + ["free"]):
            records.append(em_record(f"q{q}", prompt, trainer.backend.encode(f"It is {attempt}."), decision=decision,
                                     attempt=attempt, correct=attempt % 2 == 0, used_code=decision == "code",
                                     status="ok", metadata={}))
    return records


def test_the_training_set_draw_differs_between_iterations_and_repeats_on_a_rerun(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    trainer = EMTrainer(config(tiny_model_dir, task_file, tmp_path, subsample="sample", samples_per_query=2, alpha=1.0,
                               decision_rule="pi_q_free"))
    records = rollouts(trainer)

    def drawn(iteration: int) -> list:
        return [(r["doc_id"], r["attempt"]) for r, _ in trainer._reference(iteration, records, 0.0)["training"]]

    first, second = drawn(0), drawn(1)
    assert len(first) == len(second) == 12 * 2
    assert first != second
    assert drawn(0) == first and drawn(1) == second
