"""The trainers' task loader: training pools load, test splits are refused unless allowed, and the choice is recorded."""

from __future__ import annotations

import json

import pytest

from harness.em.config import EMConfig
from harness.em.config import preset as em_preset
from harness.rl.config import RLConfig
from harness.rl.config import preset as rl_preset
from harness.training.training_task import ContaminationError, load_training_task, record_training_task


@pytest.fixture
def data_dir(tmp_path):
    """Three GSM8K-shaped rows under both split names, as ../shared/data holds them."""
    rows = "".join(json.dumps({"question": f"What is {a} + 1?", "answer": f"{a} + 1 = {a + 1}\n#### {a + 1}"}) + "\n" for a in range(3))
    for name in ("gsm8k_train.jsonl", "gsm8k_test.jsonl"):
        (tmp_path / name).write_text(rows)
    return tmp_path


def test_the_gsm8k_training_pool_loads_and_is_recorded(data_dir, tmp_path):
    out = tmp_path / "run"
    task, samples, _, record = load_training_task(RLConfig(task="gsm8k-train", data_dir=str(data_dir)))
    record_training_task(out, record)
    assert task.name == "gsm8k-train" and len(samples) == 3 and samples[0].answer.endswith("#### 1")
    record = json.loads((out / "training_task.json").read_text())
    assert record["split"] == "train" and record["trained_on_test_split"] is False and record["samples"] == 3


@pytest.mark.parametrize("config_class", [RLConfig, EMConfig])
def test_a_benchmark_is_refused_unless_allowed_and_then_recorded(config_class, data_dir, tmp_path):
    with pytest.raises(ContaminationError, match="test split"):
        load_training_task(config_class(task="gsm8k", data_dir=str(data_dir)))
    *_, record = load_training_task(config_class(task="gsm8k", data_dir=str(data_dir), allow_test_split=True))
    record_training_task(tmp_path / "allowed", record)
    record = json.loads((tmp_path / "allowed" / "training_task.json").read_text())
    assert record["trained_on_test_split"] is True and record["allow_test_split"] is True


def test_procedural_and_file_tasks_take_their_split_from_their_arguments_and_names(data_dir, tmp_path):
    with pytest.raises(ContaminationError):
        load_training_task(RLConfig(task="arith", task_args={"size": 10}))  # arith's own default split is test
    _, samples, _, _ = load_training_task(RLConfig(task="arith", task_args={"split": "train", "size": 10}))
    assert len(samples) == 10
    with pytest.raises(ContaminationError):
        load_training_task(RLConfig(task=str(data_dir / "gsm8k_test.jsonl")))
    with pytest.raises(ContaminationError):  # a benchmark pointed at another file is judged by that file's name
        load_training_task(RLConfig(task="gsm8k", task_args={"local_file": str(data_dir / "gsm8k_test.jsonl")}))


def test_a_query_pool_with_its_own_column_names(tmp_path):
    pool = tmp_path / "metamath_pool.jsonl"
    pool.write_text("".join(json.dumps({"q": f"{a} times 2?", "gold": str(2 * a), "s": "MetaMath"}) + "\n" for a in range(4)))
    _, samples, _, _ = load_training_task(EMConfig(task=str(pool), task_args={"question_field": "q", "answer_field": "gold"}))
    assert [(s.question, s.answer) for s in samples][:2] == [("0 times 2?", "0"), ("1 times 2?", "2")]


def test_the_real_gpu_presets_train_on_the_training_pool(data_dir):
    for config in (rl_preset("qwen2.5-7b"), em_preset("paper-7b")):
        task, *_ = load_training_task(config.updated(data_dir=str(data_dir)))
        assert task.name == "gsm8k-train"
