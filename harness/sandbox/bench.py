"""Per-cell latency and throughput of each way to run a cell, measured in one run so the ratios are fair.

Paths: a fresh `python` process per cell and a `docker exec` per cell (the baselines the field uses),
the local backend (a warm session, and a fresh session per cell) and the pooled Docker REPL.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Callable

from harness.sandbox.limits import SandboxLimits

WORKLOADS = {
    "print": "print(sum(range(10)))",
    "sympy": "import sympy\nx = sympy.Symbol('x')\nprint(sympy.solve(x**2 - 4, x))",
}
ALL_PATHS = ("fresh", "local", "local-fresh", "docker-exec", "docker")
SLOW_PATHS = {"fresh", "docker-exec"}  # ~0.7 s a cell with sympy: fewer cells keep the run short


def measure(run_one: Callable[[str], object], code: str, cells: int) -> dict:
    run_one(code)  # warm-up, not counted
    latencies = []
    started = time.perf_counter()
    for _ in range(cells):
        began = time.perf_counter()
        run_one(code)
        latencies.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"cells": cells, "p50_ms": 1000 * statistics.median(ordered),
            "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "cells_per_s": cells / elapsed}


def checked(result) -> None:
    if result.status != "ok":
        raise RuntimeError(f"bench cell failed: {result.status} {result.error}")


def run_bench(cells: int = 200, paths: list[str] | None = None) -> list[dict]:
    from harness.sandbox import get_sandbox

    limits = SandboxLimits(timeout_s=60)
    wanted = list(paths or ALL_PATHS)
    figures: list[dict] = []
    docker_sandbox = None
    if {"docker", "docker-exec"} & set(wanted):
        try:
            docker_sandbox = get_sandbox("docker", limits=limits, containers=1)
        except Exception as exc:
            print(f"WARNING: no Docker engine, skipping the Docker paths ({exc.__class__.__name__}: {exc})",
                  file=sys.stderr)
            wanted = [path for path in wanted if not path.startswith("docker")]
    with get_sandbox("local", limits=limits) as local:
        for workload, code in WORKLOADS.items():
            for path in wanted:
                count = max(5, cells // 20) if path in SLOW_PATHS else cells
                runner, cleanup = _runner(path, local, docker_sandbox)
                try:
                    figures.append({"workload": workload, "path": path, **measure(runner, code, count)})
                finally:
                    cleanup()
    if docker_sandbox is not None:
        docker_sandbox.close()
    return figures


def _runner(path: str, local, docker_sandbox):
    nothing = lambda: None  # noqa: E731
    if path == "fresh":
        command = [sys.executable, "-I", "-B", "-c"]
        return (lambda code: subprocess.run(command + [code], capture_output=True, check=True)), nothing
    if path == "local-fresh":
        return (lambda code: checked(local.run(code))), nothing
    if path in ("local", "docker"):
        session = (local if path == "local" else docker_sandbox).session()
        return (lambda code: checked(session.run(code))), session.close
    if path == "docker-exec":
        session = docker_sandbox.session()  # only to hold a pooled container and learn its interpreter
        entry = docker_sandbox.pool.pool[0]
        api = docker_sandbox.client.api
        env = {"PYTHONPATH": ":".join(entry.sys_path)}

        def exec_once(code: str) -> None:
            exec_id = api.exec_create(entry.container.id, [entry.python, "-B", "-c", code], environment=env)["Id"]
            api.exec_start(exec_id)
            if api.exec_inspect(exec_id)["ExitCode"] != 0:
                raise RuntimeError("docker exec cell failed")

        return exec_once, session.close
    raise ValueError(f"unknown bench path {path!r}; choose from {', '.join(ALL_PATHS)}")


def format_table(figures: list[dict]) -> str:
    baseline = {(row["workload"]): row["cells_per_s"] for row in figures if row["path"] == "fresh"}
    lines = [f"{'workload':8} {'path':12} {'cells':>6} {'p50 ms':>9} {'p95 ms':>9} {'cells/s':>9} {'vs fresh':>9}"]
    for row in figures:
        ratio = row["cells_per_s"] / baseline[row["workload"]] if row["workload"] in baseline else float("nan")
        lines.append(f"{row['workload']:8} {row['path']:12} {row['cells']:>6} {row['p50_ms']:>9.2f} "
                     f"{row['p95_ms']:>9.2f} {row['cells_per_s']:>9.1f} {ratio:>8.1f}x")
    return "\n".join(lines)
