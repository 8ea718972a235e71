"""The paper's query pool (task `paper-pool`, harness/training/paper_pool.py) from tiny hand-made copies of its
four sources: field mapping, deduplication across sources and against a real benchmark question, counts per
source, the local-folder override and the refusal when neither the hub nor local copies are there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.eval.tasks import TaskError, available_tasks, load_samples, load_task
from harness.rl.config import RLConfig
from harness.training import paper_pool
from harness.training.training_task import load_training_task


def gsm8k_test_question(data_dir: Path) -> str:
    return json.loads((data_dir / "gsm8k_test.jsonl").read_text(encoding="utf-8").splitlines()[0])["question"]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def write_sources(folder: Path, benchmark_question: str) -> Path:
    folder.mkdir(parents=True)
    write_jsonl(folder / "metamath.jsonl", [
        {"query": "What is 2 + 3?", "response": "2 + 3 = 5.\nThe answer is: 5", "type": "GSM_AnsAug"},
        # the gsm8k test question with other capitals and spacing: still that benchmark's question
        {"query": "  " + benchmark_question.upper().replace(" ", "   "), "response": "The answer is: 18"},
        {"query": "What is 2 + 3?", "response": "The answer is: 5"},  # the same query again
    ])
    write_jsonl(folder / "mathinstruct.jsonl", [
        {"source": "data/CoT/gsm_rft.json", "instruction": "Solve x + 1 = 4.", "output": "x = 3. The answer is 3."},
        {"source": "data/PoT/mathqa.json", "instruction": "Compute 7 * 6.", "output": "print(7 * 6)"},  # states no gold
        {"source": "data/CoT/aqua_rat.json", "instruction": "Pick one: (A) 1 (B) 2", "output": "The answer is B"},
        {"source": "data/CoT/math50k_camel.json", "instruction": "what is 2 + 3?", "output": "The answer is 5"},
    ])
    write_jsonl(folder / "mmos.jsonl", [
        {"prompt": "<|user|>\nFind $\\sqrt{16}$.\n<|assistant|>", "completion": "```python\nprint(4)\n```\n$\\boxed{4}$"},
    ])
    write_jsonl(folder / "openmath.jsonl", [
        {"question": "How many sides has a hexagon?", "expected_answer": "6", "generated_solution": "6"},
        {"question": "How many sides has a hexagon?", "expected_answer": "6", "generated_solution": "six"},
    ])
    return folder


def test_the_pool_maps_fields_deduplicates_and_counts_per_source(data_dir, tmp_path):
    sources = paper_pool.source_rows(str(write_sources(tmp_path / "sources", gsm8k_test_question(data_dir))), data_dir)
    pool, counts = paper_pool.build_pool(sources, data_dir)
    assert [(row["source"], row["question"], row["answer"]) for row in pool] == [
        ("metamath", "What is 2 + 3?", "5"),
        ("mathinstruct", "Solve x + 1 = 4.", "3"),
        ("mmos", "Find $\\sqrt{16}$.", "4"),
        ("openmath", "How many sides has a hexagon?", "6"),
    ]
    assert counts["metamath"] == {"rows": 3, "kept": 1, "no_gold": 0, "duplicate": 1, "benchmark": 1}
    # "what is 2 + 3?" is metamath's query in other capitals: an earlier source has it
    assert counts["mathinstruct"] == {"rows": 4, "kept": 1, "no_gold": 2, "duplicate": 1, "benchmark": 0}
    assert counts["mmos"]["kept"] == 1 and counts["openmath"] == {"rows": 2, "kept": 1, "no_gold": 0, "duplicate": 1,
                                                                   "benchmark": 0}
    assert len({row["id"] for row in pool}) == len(pool)


def test_the_task_reads_the_data_folders_paper_pool_and_trains_as_a_train_split(data_dir, tmp_path):
    data = tmp_path / "data"
    write_sources(data / "paper-pool", gsm8k_test_question(data_dir))
    for benchmark in data_dir.glob("*.jsonl"):
        (data / benchmark.name).symlink_to(benchmark)
    task, samples, _, record = load_training_task(RLConfig(task="paper-pool", data_dir=str(data)))
    assert task.name == "paper-pool" and len(samples) == 4
    assert record["split"] == "train" and not record["trained_on_test_split"]
    assert set(record["benchmark_overlap"].values()) == {0} and record["unchecked_benchmarks"] == {}
    assert {sample.metadata["source"] for sample in samples} == {"metamath", "mathinstruct", "mmos", "openmath"}


def test_the_tasks_local_folder_is_the_one_the_generator_reads():
    spec = tomllib.loads(available_tasks()["paper-pool"].read_text(encoding="utf-8"))
    assert spec["local_file"] == paper_pool.LOCAL_FOLDER and spec["split"] == "train"


def test_a_local_folder_missing_a_source_is_refused(data_dir, tmp_path):
    folder = write_sources(tmp_path / "sources", "unused")
    (folder / "mmos.jsonl").unlink()
    task = load_task("paper-pool")
    task = type(task)(**{**task.__dict__, "generator_args": {"split": "train", "sources_dir": str(folder)}})
    with pytest.raises(TaskError, match=r"has no mmos\.jsonl or \.parquet \(cyzhh/MMOS\).*sources_dir"):
        load_samples(task, data_dir)


def test_a_local_source_without_the_hubs_columns_is_refused(data_dir, tmp_path):
    folder = write_sources(tmp_path / "sources", "unused")
    write_jsonl(folder / "openmath.jsonl", [{"question": "How many sides has a hexagon?", "answer": "6"}])
    with pytest.raises(TaskError, match=r"openmath row 1 has no column 'expected_answer' \(the hub's columns: question, "
                                        r"expected_answer\)"):
        paper_pool.build_pool(paper_pool.source_rows(str(folder), data_dir), data_dir)


def test_without_the_hub_or_local_copies_it_refuses_in_one_line(data_dir, tmp_path):
    """Offline (HF_HUB_OFFLINE, an empty cache) and no DATA_DIR/paper-pool: a one-line error naming the four
    sources and both local overrides; nothing else is loaded in their place."""
    code = ("from harness.eval.tasks import load_task, load_samples, TaskError\n"
            "try:\n    load_samples(load_task('paper-pool'))\n"
            "except TaskError as exc:\n    print(exc)\nelse:\n    print('LOADED')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HARNESS_DATA_DIR": str(data_dir)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    message = lines[0]
    assert message.startswith("paper-pool: could not load metamath (meta-math/MetaMathQA) from the Hugging Face hub")
    for hub_id in ("meta-math/MetaMathQA", "TIGER-Lab/MathInstruct", "cyzhh/MMOS", "nvidia/OpenMathInstruct-1"):
        assert hub_id in message
    assert f"{data_dir / 'paper-pool'}" in message and "sources_dir" in message


@pytest.mark.parametrize("text, answer", [("so x = 2.\nThe answer is: 2", "2"), ("The answer is 3.5.", "3.5"),
                                          ("The answer is $\\frac{1}{2}$.\nDone", "$\\frac{1}{2}$"),
                                          ("print(3)", None), ("The answer is", None)])
def test_answer_after_phrase(text, answer):
    assert paper_pool.answer_after_phrase(text) == answer
