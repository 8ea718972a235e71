"""One run per folder (issue 22 item 11): every trainer takes the run lock `harness eval` takes, for the
whole run; a second run into the folder fails with one `error:` line naming the holder's pid and writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.eval.run_lock import LOCK_NAME
from harness.training.run_folder import PROVENANCE_FILE, open_run

CONFIG = {"learning_rate": 0.001, "steps": 10}
runner = CliRunner()


def start(output, **flags):
    return open_run(output, "train-rl", CONFIG, frozenset({"steps"}), **{"resume": False, **flags})


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextmanager
def held_by_another_process(folder: Path):
    """The folder locked by a live process, as a running trainer or eval holds it; yields that pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from harness.eval.run_lock import RunLock; lock = RunLock(sys.argv[1]); lock.acquire(); "
         "print('locked', flush=True); time.sleep(300)", str(folder)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_the_run_holds_its_folder_until_released(tmp_path):
    with start(tmp_path / "run") as run:
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK_NAME]  # nothing else before record()
        with pytest.raises(ValueError, match=r"is in use by another run \(pid \d+\)"):
            start(tmp_path / "run")
        run.record()
    start(tmp_path / "run", resume=True).release()  # released: the run can be resumed


def test_a_folder_another_process_holds_is_refused_with_its_pid_and_left_as_it_was(tmp_path):
    with start(tmp_path) as run:
        run.record()
    with held_by_another_process(tmp_path) as pid:
        before = snapshot(tmp_path)
        for resume in (False, True):
            with pytest.raises(ValueError, match=rf"^{tmp_path} is in use by another run \(pid {pid}\)"):
                start(tmp_path, resume=resume)
        assert snapshot(tmp_path) == before


def test_a_run_killed_before_writing_anything_leaves_a_folder_that_counts_as_empty(tmp_path):
    (tmp_path / LOCK_NAME).write_text("12345\n")
    with start(tmp_path) as run:
        assert not run.resuming


def test_the_other_processes_of_a_run_judge_the_folder_without_locking_it(tmp_path):
    with start(tmp_path / "run"):  # the main process
        follower = start(tmp_path / "run", lock=False)
        assert not follower.resuming and follower.lock is None
    assert not start(tmp_path / "absent", lock=False).output.exists()


@pytest.mark.parametrize("command", ["train-sft", "train-rl", "train-em"])
def test_each_trainer_refuses_a_folder_in_use_with_one_error_line_and_writes_nothing(tmp_path, command):
    (tmp_path / "model").mkdir()  # never loaded: the folder is refused first
    data = tmp_path / "demos.jsonl"
    data.write_text("{}\n")
    out = tmp_path / "out"
    out.mkdir()
    flags = ["--data", str(data), "-o", str(out)] if command == "train-sft" else ["--preset", "tiny", "-o", str(out)]
    with held_by_another_process(out) as pid:
        before = snapshot(out)
        result = runner.invoke(app, [command, "--model", str(tmp_path / "model"), "--device", "cpu", *flags])
        assert result.exit_code != 0
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert errors == [f"error: {out} is in use by another run (pid {pid}); wait for it to finish or choose another output folder"]
        assert snapshot(out) == before


@pytest.mark.timeout(600)
def test_of_two_train_sft_runs_into_one_folder_the_second_fails_and_the_folder_is_the_firsts(tmp_path):
    import accelerate  # noqa: F401 - imported now, so the second run reaches the lock in a second, not ten

    from harness.testbed.demos import demonstration_rows
    from harness.testbed.model_init import write_tiny_model

    write_tiny_model(tmp_path / "m")
    data = tmp_path / "demos.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in demonstration_rows(8, seed=1, code_ratio=0.5, forced_share=0.5)))
    out = tmp_path / "out"
    flags = ["--model", str(tmp_path / "m"), "--data", str(data), "-o", str(out), "--batch-size", "2", "--threads", "1",
             "--warmup-steps", "1", "--save-every", "50"]
    first = subprocess.Popen([sys.executable, "-m", "harness.cli_main", "train-sft", *flags, "--steps", "60"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not ((out / LOCK_NAME).is_file() and (out / LOCK_NAME).read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the first run never locked its folder"
            time.sleep(0.1)
        second = runner.invoke(app, ["train-sft", *flags, "--steps", "2", "--learning-rate", "0.01"])
        assert first.poll() is None, "the first run ended before the second was refused: make it longer"
        assert second.exit_code != 0
        assert [line for line in second.output.splitlines() if line.startswith("error:")] == [
            f"error: {out} is in use by another run (pid {first.pid}); wait for it to finish or choose another output folder"]
        assert first.wait(timeout=500) == 0, first.stderr.read().decode()[-2000:]
    finally:
        first.kill()
        first.wait()
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    assert provenance["config"]["steps"] == 60 and provenance["config"]["learning_rate"] == 0.003
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()][-1] == 60
