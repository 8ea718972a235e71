"""`harness eval` with a scripted model: the run store's guarantees, prompt_too_long, the threads record,
and one `error:` line (never a traceback) for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from harness.cli import app

from .scripted import CharTokenizer, ScriptedBackend

runner = CliRunner()
QUESTIONS = [{"id": "a", "question": "What is 2+2?", "answer": "4"}, {"id": "b", "question": "What is 3+3?", "answer": "6"}]


class VocabTokenizer(CharTokenizer):
    def get_vocab(self) -> dict[str, int]:
        return {chr(i): i for i in range(1, 128)}  # one character per token at most


class ShortContextBackend(ScriptedBackend):
    context_length = 2000

    def __init__(self, script) -> None:
        super().__init__(script)
        self.tokenizer = VocabTokenizer()
        self.encoded_chars = 0

    def encode(self, text: str) -> list[int]:
        self.encoded_chars += len(text)
        return super().encode(text)


@pytest.fixture
def scripted(monkeypatch):
    """`--model hf:scripted` loads a scripted model that always answers 4."""
    backends = []

    def load(spec, args):
        backends.append(ShortContextBackend(lambda prompt: "The answer is \\boxed{4}."))
        return backends[-1]

    monkeypatch.setattr("harness.models.load_backend", load)
    return backends


def write_task(path, rows=QUESTIONS):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def evaluate(tmp_path, *extra):
    task = tmp_path / "task.jsonl"
    if not task.exists():
        write_task(task)
    return runner.invoke(app, ["eval", "--model", "hf:scripted", "--task", str(task), "--id-field", "id",
                               "--output-dir", str(tmp_path / "runs"), *extra])


def run_dir(tmp_path):
    return tmp_path / "runs" / "scripted" / "task" / "cot"


def errors(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def test_a_prompt_over_the_context_is_refused_per_sample_without_generating(tmp_path, scripted):
    write_task(tmp_path / "task.jsonl", [*QUESTIONS, {"id": "huge", "question": "1+" * 2_000_000 + "1", "answer": "2000001"}])
    result = evaluate(tmp_path, "--samples", "2")
    assert result.exit_code == 0, result.output
    records = {(r["doc_id"], r["attempt"]): r for r in map(json.loads, (run_dir(tmp_path) / "samples.jsonl").read_text().splitlines())}
    assert [records[("huge", a)]["status"] for a in (0, 1)] == ["prompt_too_long"] * 2
    assert records[("huge", 0)]["correct"] is False and records[("huge", 0)]["tokens"] == 0
    assert records[("a", 0)]["status"] == "correct"
    assert scripted[-1].encoded_chars < 10_000  # the 4 MB prompt was refused by its length, never tokenized
    assert all(len(prompt) < 1000 for prompt in map(lambda r: r["prompt"] or "", records.values()))
    results = json.loads((run_dir(tmp_path) / "results.json").read_text())
    assert results["tools"]["finish_reasons"]["prompt_too_long"] == 2
    assert results["metrics"]["accuracy"] == pytest.approx(1 / 3)  # "a" right, "b" wrong, "huge" refused


def test_corrupt_lines_are_reported_and_regenerated_and_the_run_records_its_threads(tmp_path, scripted):
    assert evaluate(tmp_path).exit_code == 0
    samples = run_dir(tmp_path) / "samples.jsonl"
    first, second = samples.read_text().splitlines()
    samples.write_text(f"{first}\n{{}}\nnot json\n{second}\n{first}\n")
    result = evaluate(tmp_path)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "moved 3 bad line(s)" in result.output
    assert sorted(json.loads(line)["doc_id"] for line in samples.read_text().splitlines()) == ["a", "b"]
    assert not scripted[-1].calls  # both samples survived: nothing generated again
    cpus = json.loads((run_dir(tmp_path) / "run.json").read_text())["cpus"]
    assert 1 <= cpus["torch_threads"] == cpus["available"] <= cpus["affinity"]


def test_another_max_tokens_after_run_json_is_lost_is_refused(tmp_path, scripted):
    assert evaluate(tmp_path, "--max-tokens", "64").exit_code == 0
    (run_dir(tmp_path) / "run.json").unlink()
    result = evaluate(tmp_path, "--max-tokens", "32")
    assert result.exit_code != 0 and len(errors(result)) == 1 and "--overwrite" in result.output


def test_unusable_output_folders_fail_before_the_model_loads(tmp_path, scripted):
    (tmp_path / "file").write_text("keep me")
    result = evaluate(tmp_path, "--output-dir", str(tmp_path / "file"))
    assert result.exit_code != 0 and errors(result) == [f"error: --output-dir {tmp_path / 'file'} is a file, not a folder"]
    assert not scripted and (tmp_path / "file").read_text() == "keep me"
    (run_dir(tmp_path) / "samples.jsonl").mkdir(parents=True)
    result = evaluate(tmp_path)
    assert result.exit_code != 0 and len(errors(result)) == 1 and "samples.jsonl" in result.output
    assert not scripted[-1].calls  # refused before generating, so no sample was made and lost


def test_a_run_directory_in_use_is_one_clear_error(tmp_path, scripted):
    from harness.eval.run_lock import RunLock

    run_dir(tmp_path).mkdir(parents=True)
    holder = RunLock(run_dir(tmp_path))
    holder.acquire()
    result = evaluate(tmp_path)
    holder.release()
    assert result.exit_code != 0 and len(errors(result)) == 1 and "in use by another run" in result.output


def test_an_empty_task_is_an_error(tmp_path, scripted):
    write_task(tmp_path / "task.jsonl", [])
    result = evaluate(tmp_path)
    assert result.exit_code != 0 and len(errors(result)) == 1 and "no samples" in result.output


def test_a_task_file_that_is_not_utf8_is_named(tmp_path, scripted):
    (tmp_path / "task.jsonl").write_bytes(b'{"id": "a", "question": "caf\xe9", "answer": "1"}\n')
    result = evaluate(tmp_path)
    assert result.exit_code != 0 and len(errors(result)) == 1 and f"{tmp_path / 'task.jsonl'}:1: not UTF-8" in result.output


def test_sandbox_run_without_a_docker_engine_is_one_clear_error(tmp_path):
    (tmp_path / "cell.py").write_text("print(1)\n")
    result = subprocess.run([sys.executable, "-m", "harness.cli_main", "sandbox", "run", "--backend", "docker", str(tmp_path / "cell.py")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert result.returncode != 0
    assert result.stderr.startswith("error: the docker sandbox is unavailable") and "Traceback" not in result.stderr


def test_cgroup_quota_is_the_smallest_on_the_way_up(tmp_path):
    from harness.models.threads import cgroup_cpu_quota

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "a" / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "a" / "b" / "cpu.max").write_text("300000 100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/a/b\n")
    assert cgroup_cpu_quota(tmp_path, proc) == 1.5
    proc.write_text("0::/\n")
    assert cgroup_cpu_quota(tmp_path, proc) is None


def test_an_evaluation_runs_without_the_command_line(tmp_path, scripted):
    from contextlib import contextmanager

    from harness.eval.evaluation import Evaluation
    from harness.eval.runner import EvalConfig

    seen = []

    @contextmanager
    def progress(label):
        seen.append(label)
        yield lambda done, total, correct: seen.append((done, total, correct))

    task = write_task(tmp_path / "task.jsonl")
    config = EvalConfig(model="hf:scripted", task=str(task), output_dir=str(tmp_path / "runs"), batch_size=1)
    with Evaluation(config, id_field="id") as evaluation:
        [(run, results)] = list(evaluation.runs(progress=progress))
    assert run.directory == run_dir(tmp_path) and run.config.method == "cot" and run.config.task == "task"
    assert json.loads((run.directory / "results.json").read_text())["metrics"] == results["metrics"]
    assert results["metrics"]["accuracy"] == 0.5  # the scripted model answers 4 to both questions
    assert seen == ["task/cot", (0, 2, 0), (1, 2, 1), (2, 2, 1)]
