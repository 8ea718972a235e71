"""The sandbox under load: many concurrent sessions, each running cells back to back, on one machine.

For each backend and each number of concurrent sessions, every session runs `cells` sympy cells; a cell's
latency is split into queue time (waiting for a session to exist: a free Docker container and a started
REPL, or a forked local session; cells of an open session never wait for each other) and execution time
(the session's own `run`, as `CellResult.duration_s` measures it). Also the neighbour slowdown of issue 22
item 5: how much slower a small task gets beside a session of 63 busy processes.
"""

from __future__ import annotations

import math
import statistics
import textwrap
import threading
import time

from harness.sandbox.limits import SandboxLimits

CELL = "import sympy\nx = sympy.Symbol('x')\nprint(sympy.solve(x**2 - 4, x))"
NEIGHBOUR = "import time\nt = time.perf_counter()\nsum(i * i for i in range(200_000))\nprint(time.perf_counter() - t)"
HOG = textwrap.dedent("""
    import os, time
    end = time.monotonic() + 3
    for _ in range(63):
        if os.fork() == 0:
            while time.monotonic() < end:
                pass
            os._exit(0)
    for _ in range(63):
        os.wait()
""")
LIMITS = SandboxLimits(timeout_s=120, memory_mb=512, pids=80)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def load_row(sandbox, sessions: int, cells: int) -> dict:
    """`sessions` threads, each opening its own session and running `cells` cells; all start together."""
    queue, execution, failures = [], [], []
    start = threading.Barrier(sessions + 1)
    lock = threading.Lock()

    def trajectory() -> None:
        start.wait()
        submitted = time.perf_counter()
        try:
            with sandbox.session() as session:
                waited = time.perf_counter() - submitted
                for index in range(cells):
                    result = session.run(CELL)
                    with lock:
                        queue.append(waited if index == 0 else 0.0)
                        execution.append(result.duration_s)
                        if result.status != "ok":
                            failures.append(f"{result.status}: {result.error}")
        except Exception as exc:  # noqa: BLE001 - a session that could not open is a figure, not a crash
            with lock:
                failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=trajectory) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    total = [q + e for q, e in zip(queue, execution)]
    row = {"sessions": sessions, "cells": len(execution), "failed": len(failures), "cells_per_s": len(execution) / wall}
    for name, values in (("latency", total), ("queue", queue), ("exec", execution)):
        if values:
            row.update({f"{name}_mean_ms": 1000 * statistics.fmean(values), f"{name}_p50_ms": 1000 * percentile(values, 0.5),
                        f"{name}_p99_ms": 1000 * percentile(values, 0.99)})
    if failures:
        row["first_failure"] = failures[0]
    return row


def neighbour_slowdown(sandbox, rounds: int = 2) -> dict:
    """Best time of a small task alone and beside a session of 63 busy processes, taken in turns."""
    alone, beside = [], []
    with sandbox.session() as neighbour:
        neighbour.run("print(1)")
        for _ in range(rounds):
            alone.append(float(neighbour.run(NEIGHBOUR).stdout))
            with sandbox.session() as hog:
                runner = threading.Thread(target=hog.run, args=(HOG,), kwargs={"timeout": 60})
                runner.start()
                time.sleep(0.5)
                beside.append(float(neighbour.run(NEIGHBOUR).stdout))
                runner.join()
    return {"alone_ms": 1000 * min(alone), "beside_ms": 1000 * min(beside), "slowdown": min(beside) / min(alone)}


def run_load(backends: list[str], concurrency: list[int], cells: int, docker_containers: int) -> list[dict]:
    from harness.sandbox import get_sandbox

    rows = []
    for backend in backends:
        options = {"containers": docker_containers} if backend == "docker" else {}
        with get_sandbox(backend, limits=LIMITS, **options) as sandbox:
            rows.append({"backend": backend, "neighbour": neighbour_slowdown(sandbox)})
            for sessions in concurrency:
                rows.append({"backend": backend, **load_row(sandbox, sessions, cells)})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'backend':8} {'sessions':>8} {'cells':>6} {'cells/s':>8} {'mean ms':>9} {'p50 ms':>9} {'p99 ms':>9} "
             f"{'queue p50':>10} {'queue p99':>10} {'exec p50':>9} {'exec p99':>9} {'failed':>6}"]
    for row in rows:
        if "neighbour" in row:
            n = row["neighbour"]
            lines.append(f"{row['backend']:8} neighbour task alone {n['alone_ms']:.1f} ms, beside 63 busy processes "
                         f"{n['beside_ms']:.1f} ms: {n['slowdown']:.2f}x")
            continue
        lines.append(f"{row['backend']:8} {row['sessions']:>8} {row['cells']:>6} {row['cells_per_s']:>8.1f} "
                     f"{row.get('latency_mean_ms', 0):>9.1f} {row.get('latency_p50_ms', 0):>9.1f} "
                     f"{row.get('latency_p99_ms', 0):>9.1f} {row.get('queue_p50_ms', 0):>10.1f} "
                     f"{row.get('queue_p99_ms', 0):>10.1f} {row.get('exec_p50_ms', 0):>9.1f} "
                     f"{row.get('exec_p99_ms', 0):>9.1f} {row['failed']:>6}")
    return "\n".join(lines)
