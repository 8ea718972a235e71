"""The local backend's fork server: a warm interpreter that forks one jailed kernel per session.

Run as `python -I -B zygote.py CONFIG_JSON` with a scrubbed environment; standard library only, so a
forked session carries nothing of the harness. Importing sympy and numpy once here makes a session cost
a fork (a few ms, copy-on-write) instead of a fresh interpreter plus ~600 ms of imports.

Process tree, and why each level exists:
  zygote  (subreaper; exits when the harness's end of its request socket closes)
    launcher  (one per session, dies with the zygote; unshares namespaces, reports how the kernel ended)
      kernel  (pid 1 of the session's pid namespace: killing it kills everything the session started)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jail  # noqa: E402
import kernel as kernel_loop  # noqa: E402

sys.path.pop(0)
CONTROL_FD = 3
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
    for name in config["preload"]:
        __import__(name)
    if config["warm"] and "sympy" in config["preload"]:
        exec(WARMUP, {})
    isolated = config["isolation"] != "none"
    plan = jail.plan_root(jail.package_paths(config["packages"])) if isolated else None
    new_root = tempfile.mkdtemp(prefix="harness-sandbox-root-")
    jail.prctl(jail.PR_SET_CHILD_SUBREAPER, 1)  # orphaned kernels come back here to be reaped
    launchers: set[int] = set()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, lambda *_: reap(launchers))
    requests.sendall(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    try:
        while True:
            message, fds, _, _ = socket.recv_fds(requests, 65536, 3)
            if not message:
                break
            request = json.loads(message)
            pid = os.fork()
            if pid == 0:
                requests.close()
                launch_session(request, fds, config, plan, new_root)
            launchers.add(pid)
            for fd in fds:
                os.close(fd)
    finally:
        # The harness is gone: no session may outlive it. Launchers die here; their kernels follow by PDEATHSIG.
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
        for pid in launchers:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(new_root, ignore_errors=True)


def reap(launchers: set[int]) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        launchers.discard(pid)


def launch_session(request: dict, fds: list[int], config: dict, plan, new_root: str) -> None:
    """The launcher: never returns. Starts the kernel in fresh namespaces, then reports how it ended."""
    control = socket.socket(fileno=fds[0])
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)
        user_namespace = config["isolation"] == "user-namespace"
        if plan is not None:
            jail.enter_namespaces(user_namespace)
        else:
            jail.prctl(jail.PR_SET_CHILD_SUBREAPER, 1)  # without a pid namespace, escaped grandchildren come here
        scratch = None if plan is not None else tempfile.mkdtemp(prefix="harness-sandbox-scratch-")
        go_read, go_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            run_kernel(request, fds, plan, new_root, scratch, go_read, user_namespace)
        os.close(go_read)
        pidfd = os.pidfd_open(pid)
        socket.send_fds(control, [kernel_loop.encode_frame({"launcher": os.getpid()})], [pidfd])
        os.close(go_write)  # the kernel may speak only after the harness holds its pidfd
        _, wait_status = os.waitpid(pid, 0)
        if plan is None:
            kill_descendants_until_none()
            shutil.rmtree(scratch, ignore_errors=True)
        ended = {"exit": os.waitstatus_to_exitcode(wait_status)}
        control.sendall(kernel_loop.encode_frame(ended))
    except BaseException:
        try:
            control.sendall(kernel_loop.encode_frame({"fatal": traceback.format_exc()}))
        except OSError:
            pass
    os._exit(0)


def run_kernel(request, fds, plan, new_root, scratch, go_read, user_namespace) -> None:
    """pid 1 of the session: builds the jail, drops privileges, then serves cells until the harness hangs up."""
    control_fd, stdout_fd, stderr_fd = fds
    try:
        jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)
        os.read(go_read, 1)
        limits = request["limits"]
        if plan is not None:
            jail.build_root(plan, new_root, 0 if user_namespace else request["uid"], limits["scratch_mb"])
        else:
            jail.prctl(jail.PR_SET_CHILD_SUBREAPER, 1)
        os.chdir(scratch or "/tmp")
        os.environ.clear()
        os.environ.update(SANDBOX_ENV, HOME=scratch or "/tmp", TMPDIR=scratch or "/tmp")
        null = os.open(os.devnull, os.O_RDWR)
        for source, target in ((null, 0), (stdout_fd, 1), (stderr_fd, 2), (control_fd, CONTROL_FD)):
            os.dup2(source, target)
        os.closerange(CONTROL_FD + 1, kernel_loop.SAVED_STDOUT_FD)  # no host descriptor may survive: a
        os.closerange(kernel_loop.SAVED_STDERR_FD + 1, 1 << 16)  # directory fd would undo the pivot
        sys.path[:] = [path for path in sys.path if os.path.isdir(path)]
        kernel = kernel_loop.Kernel(owns_every_process=plan is not None)
        kernel_loop.apply_rlimits(limits["memory_mb"], limits["cpu_s"], limits["pids"], limits["scratch_mb"],
                                  limits["open_files"], limit_pids=plan is not None and not user_namespace)
        if plan is not None:
            jail.drop_privileges(request["uid"], user_namespace)
        kernel_loop.serve_fds(kernel, CONTROL_FD)
        os._exit(0)
    except BaseException:
        try:
            kernel_loop.write_all(control_fd, kernel_loop.encode_frame({"fatal": traceback.format_exc()}))
        finally:
            os._exit(70)


def kill_descendants_until_none() -> None:
    """Without a pid namespace: kill what the kernel left (they were reparented here), until nothing is left."""
    while True:
        children = kernel_loop.descendants(os.getpid())
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
