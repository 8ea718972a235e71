"""The local backend's fork server: a warm interpreter that forks one jailed kernel per session.

Run as `python -I -B zygote.py CONFIG_JSON` with a scrubbed environment; standard library only, so a
forked session carries nothing of the harness. Importing sympy and numpy once here makes a session cost
a fork (a few ms, copy-on-write) instead of a fresh interpreter plus ~600 ms of imports.

Process tree, and why each level exists:
  zygote  (subreaper; exits when the harness exits or closes its end of the request socket)
    launcher  (one per session, dies with the zygote; makes the session's cgroup, unshares namespaces,
               reports how the kernel ended)
      supervisor  (pid 1 of the session's pid namespace: killing it kills everything the session started;
                   dies with its launcher, by a parent-death signal re-armed after the uid change; the only
                   process that holds the control socket, see supervisor.py)
        worker  (runs the cells: kernel.py)
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import traceback
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import host_files  # noqa: E402
import jail  # noqa: E402
import kernel as kernel_loop  # noqa: E402
import session_cgroup  # noqa: E402
import supervisor as supervisor_loop  # noqa: E402
import syscall_filter  # noqa: E402

sys.path.pop(0)
CONTROL_FD = 3
LIFELINE_FD = kernel_loop.SAVED_STDERR_FD + 1  # the launcher's end of a pipe: EOF once the launcher is gone
SANDBOX_ENV = {
    "PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
}
WARMUP = """
import sympy
x = sympy.Symbol("x")
sympy.solve(x**2 - 4, x); sympy.simplify(sympy.sin(x)**2 + sympy.cos(x)**2); sympy.integrate(x**2, x)
sympy.factorint(360); sympy.Rational(1, 3) + sympy.Rational(1, 6); sympy.latex(sympy.sqrt(8))
"""


def main() -> None:
    config = json.loads(sys.argv[1])
    requests = socket.socket(fileno=config["request_fd"])
    harness = watch_harness(config["harness_pid"])
    isolated = config["isolation"] != "none"
    # ldd resolves the root's libraries while the packages import
    pending = host_files.PendingHostFiles(host_files.package_locations(config["packages"])) if isolated else None
    for name in config["preload"]:
        __import__(name)
    if config["warm"] and "sympy" in config["preload"]:
        exec(WARMUP, {})
    files = pending.result() if pending is not None else None
    try:
        cgroups = session_cgroup.prepare(os.getpid())
    except OSError:
        cgroups = None  # the harness's doctor says why; sessions keep their rlimits
    with open("/proc/self/statm") as statm:  # a session's memory limit comes on top of this interpreter's own
        baseline = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    setup = Setup(files, tempfile.mkdtemp(prefix="harness-sandbox-root-"), cgroups, baseline, os.getpid(),
                  syscall_filter.unsupported_reason() is None, config["isolation"] == "user-namespace")
    if files is not None:
        jail.enter_template_namespace(setup.user_namespace)
        jail.build_template(files, setup.new_root)
    jail.prctl(jail.PR_SET_CHILD_SUBREAPER, 1)  # orphaned kernels come back here to be reaped
    launchers: set[int] = set()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, lambda *_: reap(launchers, cgroups))
    requests.sendall(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    poller = select.poll()
    poller.register(requests, select.POLLIN)
    poller.register(harness, select.POLLIN)
    try:
        while harness not in dict(poller.poll()):
            message, fds, _, _ = socket.recv_fds(requests, 65536, 3)
            if not message:
                break
            pid = os.fork()
            if pid == 0:
                requests.close()
                launch_session(json.loads(message), fds, setup)
            launchers.add(pid)
            for fd in fds:
                os.close(fd)
    finally:
        # The harness is gone: no session may outlive it. Launchers die here; their kernels follow by PDEATHSIG.
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
        for pid in launchers:
            os.kill(pid, signal.SIGKILL)
        reap(launchers, cgroups, block=True)
        if cgroups is not None:
            session_cgroup.remove_all(cgroups, wait_s=1.0)
        if files is not None:
            jail.umount_template(setup.new_root)
        shutil.rmtree(setup.new_root, ignore_errors=True)


@dataclass
class Setup:
    """What the zygote computed once and every session reuses."""

    files: host_files.HostFiles | None  # None: no isolation, so no root to build
    new_root: str
    cgroups: session_cgroup.CgroupParents | None
    baseline_bytes: int
    zygote_pid: int
    filter_syscalls: bool
    user_namespace: bool


def watch_harness(harness_pid: int) -> int:
    """A pidfd that turns readable when the harness exits, however it exits (and whichever of its threads started
    us, which a parent-death signal would get wrong). The request socket's EOF alone is not enough: a process the
    harness forked may hold its end open."""
    pidfd = os.pidfd_open(harness_pid)
    if os.getppid() != harness_pid:  # it died before the pidfd was open; that pid may be someone else's now
        os._exit(0)
    return pidfd


def reap(launchers: set[int], cgroups, block: bool = False) -> None:
    while launchers or not block:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if cgroups is not None:  # by pid, not membership: a launcher can end before the main loop records it
            session_cgroup.remove(session_cgroup.session_paths(cgroups, f"session-{pid}"), wait_s=0.5)
        launchers.discard(pid)


def launch_session(request: dict, fds: list[int], setup: Setup) -> None:
    """The launcher: never returns. Starts the kernel in fresh namespaces, then reports how it ended."""
    control = socket.socket(fileno=fds[0])
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != setup.zygote_pid:  # the zygote died before the signal was armed
            os._exit(0)
        limits = request["limits"]
        cgroup_dirs = []
        if setup.cgroups is not None:  # the kernel is born inside; +2 processes: this launcher and the supervisor
            cgroup_dirs = session_cgroup.create_and_enter(setup.cgroups, f"session-{os.getpid()}",
                                                          setup.baseline_bytes + limits["memory_mb"] * 2**20,
                                                          limits["pids"] + 2)
        ooms = session_cgroup.OomCounter(cgroup_dirs)
        if setup.files is not None:
            jail.enter_namespaces(setup.user_namespace)
        else:
            jail.prctl(jail.PR_SET_CHILD_SUBREAPER, 1)  # without a pid namespace, escaped grandchildren come here
        scratch = None if setup.files is not None else tempfile.mkdtemp(prefix="harness-sandbox-scratch-")
        go_read, go_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            run_kernel(request, fds, setup, scratch, go_read)
        os.close(go_read)
        pidfd = os.pidfd_open(pid)
        socket.send_fds(control, [kernel_loop.encode_frame({"launcher": os.getpid()})], [pidfd])
        # The kernel may speak only after the harness holds its pidfd. go_write stays open for the launcher's
        # life: its EOF tells the kernel that the launcher is gone.
        os.write(go_write, b"g")
        _, wait_status = os.waitpid(pid, 0)
        if setup.files is None:
            kill_descendants_until_none()
            shutil.rmtree(scratch, ignore_errors=True)
        ended = {"exit": os.waitstatus_to_exitcode(wait_status), "oom_killed": ooms.fired()}
        control.sendall(kernel_loop.encode_frame(ended))
    except BaseException:
        try:
            control.sendall(kernel_loop.encode_frame({"fatal": traceback.format_exc()}))
        except OSError:
            pass
    os._exit(0)


def run_kernel(request, fds, setup: Setup, scratch, go_read) -> None:
    """pid 1 of the session: builds the jail, drops privileges, then serves cells until the harness hangs up."""
    control_fd, stdout_fd, stderr_fd = fds
    try:
        jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.read(go_read, 1) != b"g":  # EOF: the launcher died before it was ready
            os._exit(0)
        limits = request["limits"]
        if setup.files is not None:
            jail.enter_root(setup.files, setup.new_root, 0 if setup.user_namespace else request["uid"],
                            limits["scratch_mb"], limits["scratch_files"])
        else:
            jail.prctl(jail.PR_SET_CHILD_SUBREAPER, 1)
        os.chdir(scratch or "/tmp")
        os.environ.clear()
        os.environ.update(SANDBOX_ENV, HOME=scratch or "/tmp", TMPDIR=scratch or "/tmp")
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(go_read, LIFELINE_FD)
        for source, target in ((null, 0), (stdout_fd, 1), (stderr_fd, 2), (control_fd, CONTROL_FD)):
            os.dup2(source, target)
        os.closerange(CONTROL_FD + 1, kernel_loop.SAVED_STDOUT_FD)  # no host descriptor may survive: a
        os.closerange(LIFELINE_FD + 1, 1 << 16)  # directory fd would undo the pivot
        sys.path[:] = [path for path in sys.path if os.path.isdir(path)]
        kernel = kernel_loop.Kernel()
        kernel_loop.apply_rlimits(limits["memory_mb"], limits["cpu_s"], limits["pids"], limits["scratch_mb"],
                                  limits["open_files"], limit_pids=setup.files is not None and not setup.user_namespace)
        if setup.files is not None:
            jail.drop_privileges(request["uid"], setup.user_namespace)
        else:
            jail.prctl(jail.PR_SET_NO_NEW_PRIVS, 1)  # what a seccomp filter needs without CAP_SYS_ADMIN
        jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)  # changing uid or capabilities cleared it
        if select.select([LIFELINE_FD], [], [], 0)[0]:  # EOF: the launcher died before the signal was re-armed
            os._exit(0)
        os.close(LIFELINE_FD)
        if setup.filter_syscalls:
            syscall_filter.install()
        supervisor_loop.serve_fds(supervisor_loop.Supervisor(kernel, private_fds=[CONTROL_FD]), CONTROL_FD)
        os._exit(0)
    except BaseException:
        try:
            kernel_loop.write_all(control_fd, kernel_loop.encode_frame({"fatal": traceback.format_exc()}))
        finally:
            os._exit(70)


def kill_descendants_until_none() -> None:
    """Without a pid namespace: kill what the kernel left (they were reparented here), until nothing is left."""
    while True:
        children = kernel_loop.live_descendants(os.getpid())
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kernel_loop.reap_children()


if __name__ == "__main__":
    main()
