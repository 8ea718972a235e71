"""Grading workers die with the process that started them, even one busy on a comparison (issue 22 item 10).

A worker waiting for work notices its parent's end as end-of-file on its pipe; one in the middle of a
SymPy computation that runs for minutes (and may hold gigabytes) would not, until it finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")

# A comparison SymPy spends well over a minute on: the busy worker the test kills the parent under.
SLOW_CASE = {"pred": "\\boxed{\\int_0^1 x^{17} \\sin(x)\\,dx}", "gold": "\\frac{1}{\\sqrt{3}} + \\cos(1)"}
BUSY_CPU_S = 6.0  # more CPU than a worker's start-up costs, so it is past start-up and comparing
HARD_TIMEOUT_S = 120.0


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the state on; the name may hold spaces


def _workers_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and int(fields[1]) == parent:
            try:
                if b"harness.grading.worker" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


@pytest.mark.timeout(HARD_TIMEOUT_S + 60)
def test_kill_9_of_harness_grade_takes_its_busy_workers_with_it(tmp_path):
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(json.dumps(SLOW_CASE) for _ in range(4)) + "\n")
    grade = subprocess.Popen(
        [sys.executable, "-m", "harness.cli_main", "grade", "--input", str(cases), "--output", str(tmp_path / "out.jsonl"),
         "--deadline", "600", "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + HARD_TIMEOUT_S
        while not any(_cpu_seconds(pid) > BUSY_CPU_S for pid in workers):
            assert time.monotonic() < deadline, "no grading worker got busy"
            assert grade.poll() is None, "harness grade ended before its workers got busy"
            workers = sorted(set(workers) | set(_workers_of(grade.pid)))
            time.sleep(0.2)
        grade.send_signal(signal.SIGKILL)
        grade.wait()
        gone_by = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < gone_by:
            time.sleep(0.1)
        assert [pid for pid in workers if _alive(pid)] == []
    finally:
        grade.kill()
        for pid in workers:  # only on failure is one left: the processes this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(60)
def test_a_worker_whose_parent_is_already_gone_exits_at_once():
    # The parent may die before a new worker asks for the parent-death signal: the worker checks.
    orphan = subprocess.run([sys.executable, "-m", "harness.grading.worker", "0", "1", "0"],  # pid 0 is nobody's parent
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=50)
    assert orphan.returncode == 1
