"""Issue 22 on the Docker backend: a killed harness takes its containers with it, sessions lent the same
container share no IPC object, the syscall filter is the local backend's, and what a container reports on a
SIGKILL is not made up."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.sandbox.docker_pool import HOST_LABEL, LABEL, PID_LABEL

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def client():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        pytest.skip(f"NO DOCKER ENGINE ANSWERS ({exc.__class__.__name__}): Docker hardening tests SKIPPED")
    return client


def session_processes(container) -> list[str]:
    """Processes in the container other than docker-init and its main process (both uid 65534)."""
    try:
        rows = container.top(ps_args="-eo uid,pid,args").get("Processes") or []
    except Exception:  # the container is gone
        return []
    return [" ".join(row) for row in rows if row[0] != "65534"]


ESCAPING_CELL = textwrap.dedent("""
    import os, signal, time
    if os.fork() == 0:
        os.setsid()  # out of the cell's session and process group
        while True:
            pass
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.1)
    while True:  # the cell itself: a busy loop
        pass
""")


def test_a_killed_harness_takes_its_containers_and_their_processes_with_it(client, tmp_path):
    script = tmp_path / "cell.py"
    script.write_text(ESCAPING_CELL)
    harness = subprocess.Popen([sys.executable, "-m", "harness.cli_main", "sandbox", "run", "--backend", "docker",
                                "--timeout", "120", str(script)], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    mine = {"label": f"{PID_LABEL}={harness.pid}"}
    try:
        deadline = time.monotonic() + 120
        while True:  # the supervisor, the worker and the cell's two children are running
            assert time.monotonic() < deadline and harness.poll() is None, "the cell never started"
            containers = client.containers.list(filters=mine)
            if containers and len(session_processes(containers[0])) >= 4:
                break
            time.sleep(0.2)
        harness.kill()
        harness.wait()
        time.sleep(4)
        assert client.containers.list(filters=mine) == [], "a container outlived the harness"
        assert session_processes(containers[0]) == []
    finally:
        harness.kill()
        harness.wait()
        for container in client.containers.list(all=True, filters=mine):
            container.remove(force=True)


def test_start_up_removes_the_containers_of_a_dead_harness(client):
    """A harness that died before it attached its lifeline leaves a running container: the next one removes it."""
    from harness.sandbox import get_sandbox

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = client.containers.create("harness-sandbox:latest", ["/never-started"],
                                        labels={LABEL: "1", PID_LABEL: dead.stdout.strip(), HOST_LABEL: socket.gethostname()})
    try:
        get_sandbox("docker", containers=1).close()
        assert client.containers.list(all=True, filters={"id": leftover.id}) == []
    finally:
        try:
            leftover.remove(force=True)
        except Exception:
            pass
