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
from tests.sandbox.conftest import TEST_LIMITS

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


@pytest.fixture(scope="module")
def one_container(client):
    """A pool of one container, so that consecutive sessions certainly run in the same one."""
    from harness.sandbox import get_sandbox

    sandbox = get_sandbox("docker", limits=TEST_LIMITS, containers=1)
    yield sandbox
    sandbox.close()


IPC = textwrap.dedent("""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    IPC_CREAT = 0o1000
""")
LEAVE_IPC = IPC + textwrap.dedent("""
    segment = libc.shmget(KEY, MB << 20, IPC_CREAT | 0o666)
    address = libc.shmat(segment, None, 0)
    ctypes.memset(address, ord("s"), MB << 20)  # charged to the container's memory from now on
    assert libc.msgget(KEY, IPC_CREAT | 0o666) >= 0
    assert libc.semget(KEY, 1, IPC_CREAT | 0o666) >= 0
    assert libc.mq_open(b"/left-behind", os.O_CREAT | os.O_RDWR, 0o666, None) >= 0
    print(sorted(os.listdir("/dev/mqueue")))
""")
SEE_IPC = IPC + textwrap.dedent("""
    tables = [line for kind in ("shm", "msg", "sem") for line in open("/proc/sysvipc/" + kind).readlines()[1:]]
    print(tables, os.listdir("/dev/mqueue"), libc.shmget(KEY, 0, 0))
""")


def test_ipc_objects_do_not_reach_the_next_session(one_container):
    """Issue 22 item 3: a pooled container's IPC namespace is shared by the sessions it is lent to in turn."""
    with one_container.session() as first:
        assert first.run("MB, KEY = 1, 0x5EED\n" + LEAVE_IPC).stdout == "['left-behind']\n"
        container = one_container.pool.pool[0]
    with one_container.session() as second:
        assert one_container.pool.pool[0] is container  # the same container, lent again
        assert second.run("KEY = 0x5EED\n" + SEE_IPC).stdout == "[] [] -1\n"


def test_a_segment_left_behind_does_not_charge_the_next_session(one_container):
    with one_container.session() as first:
        assert first.run("MB, KEY = 400, 0x5EEE\n" + LEAVE_IPC).status == "ok"
    with one_container.session() as second:
        big = second.run("block = bytearray(400 << 20)\nprint(len(block) >> 20)")
    assert (big.status, big.stdout) == ("ok", "400\n"), big


def test_the_reuse_check_spares_only_an_interpreters_mount_points_in_tmp(one_container):
    """A host interpreter under /tmp is mounted there; anything else in /tmp is a leftover."""
    from harness.sandbox.docker_pool import SCRATCH_PLACES, TRACES_CHECK

    with one_container.session() as session:
        session.run("1")
    entry = one_container.pool.pool[0]
    entry.container.exec_run([entry.python, "-I", "-S", "-c", "import os; os.mkdir('/tmp/venv')"],
                             user="0:0")
    try:
        def check(*kept: str) -> int:
            command = [entry.python, "-I", "-S", "-c", TRACES_CHECK.format(places=SCRATCH_PLACES), *kept]
            return entry.container.exec_run(command, user="65534:65534").exit_code

        # The pool's own interpreter may live under /tmp too (a checkout there): its mount points are always spared.
        own = one_container.pool.mount_points_in_tmp
        assert (check("venv", *own), check(*own), check("other", *own)) == (0, 1, 1)
    finally:
        entry.container.exec_run([entry.python, "-I", "-S", "-c", "import os; os.rmdir('/tmp/venv')"], user="0:0")


def test_scratch_inodes_are_capped(one_container):
    cell = textwrap.dedent(f"""
        import os
        for place in ("/tmp", "/dev/shm"):
            try:
                for index in range({TEST_LIMITS.scratch_files + 10}):
                    open(f"{{place}}/f{{index}}", "w").close()
            except OSError as exc:
                print(place, exc.strerror)
    """)
    with one_container.session() as session:
        assert session.run(cell).stdout == "/tmp No space left on device\n/dev/shm No space left on device\n"


def test_a_sigkill_is_not_reported_as_out_of_memory(one_container):
    with one_container.session() as session:
        result = session.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert result.status == "killed" and "SIGKILL" in result.error and "memory" not in result.error, result
