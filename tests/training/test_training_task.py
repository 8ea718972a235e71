"""The trainers' task loader: training pools load, test splits (by name or by content) are refused unless allowed,
and the choice is recorded."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.em.config import EMConfig
from harness.em.config import preset as em_preset
from harness.rl.config import RLConfig
from harness.rl.config import preset as rl_preset
from harness.training.training_task import ContaminationError, load_training_task, record_training_task
from tests.conftest import shared_data_dir
from tests.training.test_paper_pool import gsm8k_test_question, write_sources

BENCHMARK_FILES = ("math500.jsonl", "aime24.jsonl", "aime25.jsonl", "amc23.jsonl")
SHARED = shared_data_dir()


def gsm8k_rows(numbers) -> str:
    return "".join(json.dumps({"question": f"What is {a} + 1?", "answer": f"{a} + 1 = {a + 1}\n#### {a + 1}"}) + "\n" for a in numbers)


@pytest.fixture
def data_dir(tmp_path):
    """Three GSM8K-shaped rows per split (different questions, as in ../shared/data) beside the real other benchmarks,
    so the content check has every benchmark to compare with."""
    (tmp_path / "gsm8k_train.jsonl").write_text(gsm8k_rows(range(3)))
    (tmp_path / "gsm8k_test.jsonl").write_text(gsm8k_rows(range(100, 103)))
    for name in BENCHMARK_FILES:
        shutil.copy(SHARED / name, tmp_path / name)
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


def test_the_real_gpu_presets_train_on_the_papers_pool(data_dir, tmp_path):
    sources = write_sources(tmp_path / "sources", gsm8k_test_question(data_dir))  # tiny copies of its four sources
    for config in (rl_preset("qwen2.5-7b"), em_preset("paper-7b")):
        config = config.updated(data_dir=str(data_dir), task_args={**config.task_args, "sources_dir": str(sources)})
        task, samples, _, record = load_training_task(config)
        assert task.name == "paper-pool" and record["split"] == "train" and len(samples) == 4


def test_a_renamed_copy_of_a_benchmark_is_refused_by_its_content(tmp_path):
    pool = tmp_path / "competition_pool.jsonl"
    shutil.copy(SHARED / "math500.jsonl", pool)
    config = RLConfig(task=str(pool), task_args={"question_field": "problem", "answer_field": "answer"}, data_dir=str(SHARED))
    with pytest.raises(ContaminationError, match=r"shares benchmark questions: 500 with math500;.*--allow-test-split"):
        load_training_task(config)


def test_a_training_task_pointed_at_test_content_is_refused(tmp_path):
    pool = tmp_path / "more_word_problems.jsonl"
    shutil.copy(SHARED / "gsm8k_test.jsonl", pool)
    with pytest.raises(ContaminationError, match=r"1319 with gsm8k"):
        load_training_task(EMConfig(task="gsm8k-train", task_args={"local_file": str(pool)}, data_dir=str(SHARED)))


def test_the_real_gsm8k_training_pool_shares_no_question_with_any_benchmark(tmp_path, capsys):
    *_, record = load_training_task(RLConfig(task="gsm8k-train", data_dir=str(SHARED)))
    assert record["benchmark_overlap"] == {name: 0 for name in ("aime24", "aime25", "amc23", "gsm8k", "math500")}
    assert record["unchecked_benchmarks"] == {} and record["trained_on_test_split"] is False
    assert "warning" not in capsys.readouterr().err


def partly_contaminated_pool(tmp_path):
    """Five GSM8K training rows and three MATH500 questions copied in with other spacing and capitals."""
    rows = [json.loads(line) for line in (SHARED / "gsm8k_train.jsonl").read_text().splitlines()[:5]]
    for line in (SHARED / "math500.jsonl").read_text().splitlines()[:3]:
        problem = json.loads(line)
        rows.append({"question": "  " + problem["problem"].upper().replace(" ", "   ") + "\n", "answer": problem["answer"]})
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return pool


def test_a_pool_with_three_reformatted_benchmark_questions_is_refused_naming_them(tmp_path):
    with pytest.raises(ContaminationError, match=r"shares benchmark questions: 3 with math500;"):
        load_training_task(RLConfig(task=str(partly_contaminated_pool(tmp_path)), data_dir=str(SHARED)))


def test_allowing_a_test_split_trains_on_it_and_records_the_overlap(tmp_path):
    config = RLConfig(task=str(partly_contaminated_pool(tmp_path)), data_dir=str(SHARED), allow_test_split=True)
    _, samples, _, record = load_training_task(config)
    record_training_task(tmp_path / "run", record)
    record = json.loads((tmp_path / "run" / "training_task.json").read_text())
    assert len(samples) == 8 and record["trained_on_test_split"] is True and record["split"] == "unknown"
    assert record["benchmark_overlap"]["math500"] == 3 and sum(record["benchmark_overlap"].values()) == 3


def test_a_benchmark_without_data_is_recorded_unchecked_with_one_warning(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub cannot stand in for the missing file
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (data_dir / "aime25.jsonl").unlink()
    *_, record = load_training_task(RLConfig(task="gsm8k-train", data_dir=str(data_dir)))
    assert list(record["unchecked_benchmarks"]) == ["aime25"] and "aime25" not in record["benchmark_overlap"]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "aime25" in warnings[0]


@pytest.mark.parametrize("command", ["train-rl", "train-em"])
def test_the_allow_test_split_flag_sets_the_config_field(command):
    result = CliRunner().invoke(app, [command, "--help-config", "--allow-test-split"])
    assert result.exit_code == 0, result.output
    assert "allow_test_split = True (set by --allow-test-split; default False)" in result.output
