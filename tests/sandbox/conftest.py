"""Fixtures shared by the sandbox suite: one sandbox per backend for the whole run, and a leak detector.

The Docker backend is tested against a real engine (CI starts one with scripts/docker-up.sh). When no engine
answers, its tests are skipped with a loud reason in the summary, never silently.
"""

from __future__ import annotations

import os
import warnings

import pytest

from harness.sandbox import SandboxLimits, get_sandbox

SECRET_NAME, SECRET_VALUE = "HARNESS_SANDBOX_TEST_SECRET", "s3cr3t-token-do-not-leak"
TEST_LIMITS = SandboxLimits(timeout_s=5.0, memory_mb=512, output_chars=300, max_output_bytes=256 * 1024, pids=32)
_docker_problem: list[str] = []


def _open(backend: str):
    # The harness process holds a secret; no session may see it.
    os.environ[SECRET_NAME] = SECRET_VALUE
    if backend == "local":
        return get_sandbox("local", limits=TEST_LIMITS)
    try:
        import docker

        docker.from_env(timeout=10).ping()
    except Exception as exc:
        reason = f"NO DOCKER ENGINE ANSWERS ({exc.__class__.__name__}): Docker sandbox tests SKIPPED; run scripts/docker-up.sh"
        warnings.warn(reason)
        pytest.skip(reason)
    return get_sandbox("docker", limits=TEST_LIMITS, containers=8)


@pytest.fixture(scope="session")
def local_sandbox():
    sandbox = _open("local")
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="session")
def docker_sandbox():
    sandbox = _open("docker")
    yield sandbox
    sandbox.close()


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def sandbox(request):
    sandbox = request.getfixturevalue(f"{request.param}_sandbox")
    yield sandbox
    assert sandbox.open_sessions == 0, "a test left a session open"
    assert leftover_processes(sandbox) == [], "a closed session left processes behind"


@pytest.fixture
def session(sandbox):
    with sandbox.session() as session:
        yield session


def leftover_processes(sandbox) -> list[str]:
    """Processes still running as a session uid after every session of the sandbox was closed."""
    if sandbox.backend == "local":
        low, high = sandbox._uid_base, sandbox._uid_base + 1_000_000
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as handle:
                    uid = next(int(line.split()[1]) for line in handle if line.startswith("Uid:"))
            except (OSError, StopIteration):
                continue
            if low < uid <= high:
                found.append(f"pid {entry} uid {uid}")
        return found
    found = []
    for entry in sandbox.pool.pool:
        top = entry.container.top(ps_args="-eo uid,pid,args")
        for uid, pid, args in top.get("Processes") or []:
            if uid != "65534":  # 65534 is the container's own init and sleeper
                found.append(f"{entry.container.name}: pid {pid} uid {uid} {args}")
    return found
