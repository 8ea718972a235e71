"""Many sessions from many threads without cross-talk, and the `harness sandbox run` JSON contract."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest


def test_parallel_sessions_do_not_cross_talk(sandbox):
    def trajectory(index: int) -> list[str]:
        with sandbox.session() as session:
            outputs = []
            session.run(f"mine = {index}\nimport os\nopen('note.txt', 'w').write(str(mine))")
            for step in range(4):
                result = session.run(f"mine = mine * 10 + {step}\nprint(mine, open('note.txt').read())")
                outputs.append(result.stdout.strip())
            return outputs

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(trajectory, range(12)))
    for index, outputs in enumerate(results):
        value = index
        for step, line in enumerate(outputs):
            value = value * 10 + step
            assert line == f"{value} {index}", (index, outputs)


def test_one_session_is_safe_to_share_between_threads(sandbox):
    with sandbox.session() as session:
        session.run("counter = 0")
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda _: session.run("counter += 1"), range(20)))
        assert all(result.status == "ok" for result in results)
        assert session.run("print(counter)").stdout == "20\n"


@pytest.mark.parametrize("backend", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_cli_run_prints_one_json_object_and_exits_zero(backend, tmp_path, request):
    if backend == "docker":
        request.getfixturevalue("docker_sandbox")  # skips loudly when no engine answers
    script = tmp_path / "cell.py"
    script.write_text("print('out')\nraise KeyError('missing')\n")
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("harness")), "sandbox", "run", "--backend", backend, "--timeout", "5",
         "--memory", "512", str(script)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    payload = json.loads(completed.stdout)
    assert {"status", "stdout", "stderr", "duration_s", "truncated"} <= payload.keys()
    assert (payload["status"], payload["stdout"]) == ("error", "out\n")
    assert "KeyError: 'missing'" in payload["stderr"]


@pytest.mark.docker
def test_reaper_removes_containers_of_dead_harness_processes(docker_sandbox):
    import socket as socket_module

    from harness.sandbox.docker_pool import HOST_LABEL, LABEL, PID_LABEL, RUN_LABEL, reap_containers

    probe = subprocess.Popen(["true"])
    probe.wait()
    dead_pid = probe.pid  # exited and reaped: nobody owns this pid now (reuse within the test is improbable)
    entry = docker_sandbox.pool.pool[0] if docker_sandbox.pool.pool else None
    image = docker_sandbox.pool.image_name
    python = entry.python if entry else docker_sandbox.pool.python
    orphan = docker_sandbox.client.containers.create(
        image, [python, "-c", "pass"], network_mode="none",
        labels={LABEL: "1", RUN_LABEL: "orphan", HOST_LABEL: socket_module.gethostname(), PID_LABEL: str(dead_pid)})
    try:
        removed = reap_containers(docker_sandbox.client)
        assert orphan.name in removed
        live = [c.name for c in docker_sandbox.client.containers.list(all=True, filters={"label": RUN_LABEL})]
        assert all(entry.container.name in live for entry in docker_sandbox.pool.pool)  # ours are untouched
    finally:
        try:
            orphan.remove(force=True)
        except Exception:
            pass
