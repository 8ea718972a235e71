"""Issue 11 on the local backend: a killed harness takes every session with it, memory is bounded per session
(memfd included), no nested namespaces, io_uring or userfaultfd, a capped scratch inode count, and a root that
shows only the interpreter, its standard library, the allowed packages and the libraries they link."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.sandbox import SandboxLimits, get_sandbox
from harness.sandbox.isolation import local_hardening, local_isolation
from harness.sandbox.load_bench import HOG
from harness.sandbox.load_bench import NEIGHBOUR as NEIGHBOUR_WORK

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(local_isolation().mode == "none", reason="the local backend has no namespaces on this host")


@pytest.fixture(scope="module")
def hardened():
    limits = SandboxLimits(timeout_s=20, memory_mb=256, scratch_files=500)
    with get_sandbox("local", limits=limits) as sandbox:
        yield sandbox


def errno_of(call: str) -> str:
    """A cell that prints the errno name of a raw libc call, or OK when the call succeeded."""
    return textwrap.dedent(f"""
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        result = {call}
        print('OK' if result >= 0 else errno.errorcode[ctypes.get_errno()])
    """)


def alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()  # a zombie is dead, awaiting its reap
    except OSError:
        return False


def descendants(root: int) -> set[int]:
    found, frontier = set(), [root]
    while frontier:
        pid = frontier.pop()
        try:
            children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            continue
        found.update(children)
        frontier.extend(children)
    return found


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_a_killed_harness_takes_its_zygote_and_sessions_with_it(tmp_path):
    script = tmp_path / "sleep.py"
    # PR_SET_NAME: /proc/self/comm is root's once the kernel changed uid
    script.write_text("import ctypes, time\nctypes.CDLL(None).prctl(15, b'sbx-mid-cell')\ntime.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    harness = subprocess.Popen([sys.executable, "-m", "harness.cli_main", "sandbox", "run", "--backend", "local",
                                "--timeout", "60", str(script)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        tree: set[int] = set()
        while not any(comm(pid) == "sbx-mid-cell" for pid in tree):
            assert time.monotonic() < deadline and harness.poll() is None, "the cell never started"
            time.sleep(0.05)
            tree = descendants(harness.pid)
        assert len(tree) >= 3  # zygote, launcher, kernel
        harness.send_signal(signal.SIGKILL)
        harness.wait()
        time.sleep(2)
        assert [pid for pid in tree if alive(pid)] == []
    finally:
        harness.kill()
        harness.wait()
        for pid in tree:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_memfd_past_the_memory_limit_stops_the_session(hardened):
    cell = textwrap.dedent("""
        import os
        chunk = bytes(4 << 20)
        files = [os.memfd_create(f'f{i}') for i in range(20)]
        for fd in files:
            for _ in range(15):  # 60 MB each, 1.2 GB in all: page cache, not address space
                os.write(fd, chunk)
        print('held 1.2 GB')
    """)
    with hardened.session() as session:
        result = session.run(cell)
        assert result.status == "oom" and "memory limit" in result.error, result
        assert "held" not in result.stdout
        assert session.run("print(6 * 7)").stdout == "42\n"


def test_no_nested_user_namespace_so_no_private_tmpfs(hardened):
    with hardened.session() as session:
        assert session.run(errno_of("libc.unshare(0x10000000 | 0x00020000)")).stdout == "EPERM\n"
        assert session.run(errno_of("libc.unshare(0x10000000)")).stdout == "EPERM\n"
        assert session.run(errno_of("libc.setns(0, 0)")).stdout == "EPERM\n"
        assert session.run(errno_of("libc.mount(b'none', b'/tmp', b'tmpfs', 0, b'size=12g')")).stdout == "EPERM\n"
        assert session.run("import threading; t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()"
                           ).stdout == "thread\n"  # clone3 -> ENOSYS still lets glibc start threads with clone
        assert session.run("import subprocess; subprocess.run(['/nonexistent'])").error.startswith("FileNotFoundError")


def test_io_uring_and_userfaultfd_are_denied(hardened):
    number = {"x86_64": (425, 323), "aarch64": (425, 282)}.get(os.uname().machine)
    if number is None:
        pytest.skip(f"no syscall numbers for {os.uname().machine}")
    io_uring_setup, userfaultfd = number
    with hardened.session() as session:
        params = "ctypes.create_string_buffer(120)"
        assert session.run(errno_of(f"libc.syscall({io_uring_setup}, 8, {params})")).stdout == "EPERM\n"
        # UFFD_USER_MODE_ONLY (1) is what an unprivileged process may otherwise open
        assert session.run(errno_of(f"libc.syscall({userfaultfd}, 0o2000000 | 1)")).stdout == "EPERM\n"


def test_scratch_inode_count_is_capped(hardened):
    cell = textwrap.dedent("""
        import os
        made = 0
        try:
            for made in range(20000):
                open(f'/tmp/f{made}', 'w').close()
            print('made all')
        except OSError as exc:
            print(exc.strerror, made)
    """)
    with hardened.session() as session:
        reason, _, made = session.run(cell).stdout.strip().rpartition(" ")
        assert reason == "No space left on device" and 0 < int(made) <= 500


def test_root_shows_only_interpreter_stdlib_allowed_packages_and_their_libraries(hardened):
    hidden = [path for path in ("/usr/lib/git-core", "/usr/lib/gcc", "/usr/bin/gcc", "/usr/lib/python3/dist-packages",
                                str(Path(pytest.__file__).parent)) if os.path.exists(path)]
    assert hidden, "nothing on this host to check against"
    with hardened.session() as session:
        seen = session.run(f"import os; print([path for path in {hidden!r} if os.path.exists(path)])")
        assert seen.stdout == "[]\n", seen
        assert session.run("import pytest").error.startswith("ModuleNotFoundError")
        works = session.run("import sqlite3, ssl, ctypes, decimal, numpy.linalg, sympy\n"
                            "print(sqlite3.connect(':memory:').execute('select 2*21').fetchone()[0], "
                            "int(numpy.linalg.det(numpy.eye(2)) * 42), sympy.factorint(42))")
        assert works.stdout == "42 42 {2: 1, 3: 1, 7: 1}\n", works


def test_doctor_reports_every_mechanism():
    completed = subprocess.run([sys.executable, "-m", "harness.cli_main", "sandbox", "doctor"], capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    text = completed.stdout
    for mechanism in ("memory cgroup", "seccomp", "scratch inodes", "die with the harness", "root contents"):
        assert mechanism in text, text


def test_cgroup_v2_layout_on_a_stand_in_hierarchy(tmp_path, monkeypatch):
    """This host may have only cgroup v1; the v2 layout (no process in a cgroup that hands controllers down)
    is checked on a directory standing in for /sys/fs/cgroup."""
    from harness.sandbox.guest import session_cgroup

    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids io\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"30 1 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n")
    monkeypatch.setattr(session_cgroup, "MOUNTINFO", str(mountinfo))
    parents = session_cgroup.prepare(4242)
    zygote = root / "harness-sandbox" / "zygote-4242"
    assert parents.version == 2 and set(parents.parents.values()) == {str(zygote)}
    for level in (root, root / "harness-sandbox", zygote):
        assert (level / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (zygote / "cpu.weight").read_text() == str(min(100 * (os.cpu_count() or 1), 10_000))
    (zygote / "session-7").mkdir()  # the kernel would create it with its interface files
    (zygote / "session-7" / "memory.swap.max").write_text("max")
    assert session_cgroup.create_and_enter(parents, "session-7", 300 << 20, 33) == [str(zygote / "session-7")]
    session = zygote / "session-7"
    assert (session / "memory.max").read_text() == str(300 << 20)
    assert (session / "memory.swap.max").read_text() == "0"
    assert (session / "pids.max").read_text() == "33"
    assert (session / "cpu.weight").read_text() == "100"
    assert (session / "cgroup.procs").read_text() == str(os.getpid())
    (session / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    ooms = session_cgroup.OomCounter([str(session)])
    assert not ooms.fired()
    (session / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert ooms.fired()


def test_a_session_of_63_busy_processes_leaves_a_neighbour_a_third_of_its_speed():
    """Issue 22 item 5: CPU is shared per session, not per process. The neighbour's work is timed alone and
    beside the hog in turns (the machine is shared and noisy); the best of each must stay within 3x."""
    enabled = [line.split() for line in Path("/proc/cgroups").read_text().splitlines()[1:]]
    if local_hardening().cgroup is None or ["cpu", "1"] not in [[row[0], row[3]] for row in enabled]:
        pytest.skip("no writable cgroup or no cpu controller here: sessions have no CPU share (harness sandbox doctor)")
    limits = SandboxLimits(timeout_s=60, memory_mb=256, pids=80)
    with get_sandbox("local", limits=limits) as sandbox, sandbox.session() as neighbour:
        neighbour.run("print(1)")
        alone, beside = [], []
        for _ in range(2):
            alone.append(float(neighbour.run(NEIGHBOUR_WORK).stdout))
            with sandbox.session() as hog:
                runner = threading.Thread(target=hog.run, args=(HOG,), kwargs={"timeout": 30})
                runner.start()
                time.sleep(0.5)  # the 63 processes are forked and spinning
                beside.append(float(neighbour.run(NEIGHBOUR_WORK).stdout))
                runner.join()
    assert min(beside) <= 3 * min(alone), f"alone {alone}, beside the hog {beside}"
