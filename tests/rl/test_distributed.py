"""Two CPU processes (gloo) compute the same loss and gradients as one process on the same batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_workers(world: int, out: Path, aggregation: str) -> dict:
    port = free_port()
    processes = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "AGGREGATION": aggregation,
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        processes.append(subprocess.Popen([sys.executable, "-m", "tests.rl.ddp_worker", str(out)], cwd=REPO, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
    return torch.load(out)


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_two_processes_match_one(tmp_path, aggregation):
    single = run_workers(1, tmp_path / "single.pt", aggregation)
    double = run_workers(2, tmp_path / "double.pt", aggregation)
    assert double["loss"] == pytest.approx(single["loss"], rel=1e-5)
    for name, grad in single["grads"].items():
        assert torch.allclose(double["grads"][name], grad, atol=1e-6, rtol=1e-4), name
    assert any(grad.abs().sum() > 0 for grad in single["grads"].values())
