"""The supervisor half of a session: the only process in a sandbox that speaks to the host.

Runs inside the sandbox (pid 1 of a local session, or the `docker exec` process of a container), standard
library only. It forks one worker (kernel.py) that keeps the cells' namespace and runs the model's code;
the worker never holds the control channel, and in Docker never learns the end-of-cell marker, which is
drawn after the fork. A cell is over when the worker has stopped itself (seen with waitpid, which no cell
can fake without actually stopping) or died; only then does the supervisor read the worker's report,
check it, kill what the cell left running and answer the host. A report must echo the nonce drawn for its
request, and the worker must have taken that request: a cell that writes a report and stops itself is a
protocol violation, not a result. The worker is the cell's own process, so a cell that digs the nonce out of
its interpreter can still end itself early as "ok" (as it could by finishing with the same output); the next
cell then finds the request untaken, and the forged cell's state is dropped.

Two ways of talking to the host:
  * "fds" (local backend): frames over a dedicated socket; stdout and stderr are pipes of their own.
  * "stream" (Docker exec): frames arrive on stdin; the end of a cell is a sentinel written on both
    stdout and stderr, because Docker may reorder the two streams relative to each other.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import secrets
import signal
import struct
import sys
import tempfile
import termios
import time

if __name__ == "__main__":  # run as a script (Docker): -I leaves this file's directory off sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import container_traces
    import kernel as cells
    import syscall_filter
    sys.path.pop(0)
else:
    import kernel as cells  # the zygote put this directory on sys.path
    import syscall_filter

PR_SET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 3, 4, 36
REPORT_BYTES = 256 * 1024  # a worker's report is at most ~50 KiB (kernel.TRACEBACK_CHARS); more is hostile
WORKER_STATUSES = ("ok", "error", "oom")
PIPE_BYTES = 65536  # Linux's default pipe capacity
_libc = ctypes.CDLL(None, use_errno=True)


class Supervisor:
    """Forks the worker and runs its cells; `private_fds` are the host's channels, closed in the worker."""

    def __init__(self, kernel: cells.Kernel, private_fds: list[int]) -> None:
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # whatever a cell starts stays below us, orphans too
        requests_read, self.requests = os.pipe()
        self.reports, reports_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                for fd in (*private_fds, self.requests, self.reports):
                    os.close(fd)
                _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                first_to_die_of_oom()
                cells.worker_loop(kernel, requests_read, reports_write)
            finally:
                os._exit(1)
        os.close(requests_read)
        os.close(reports_write)
        self.worker = pid
        # The worker runs as our uid: without this it could read our memory or reopen our descriptors in /proc.
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        os.set_blocking(self.reports, False)
        self.worker_exit = self._wait_for_stop()
        if self.worker_exit is not None:
            raise RuntimeError(f"the worker ended before its first cell (status {self.worker_exit})")

    def run_cell(self, request: dict) -> dict:
        """The reply for one cell: the worker's checked report, or how it died."""
        nonce = secrets.token_hex(16)  # drawn per cell: the worker's report must echo it
        frame = cells.encode_frame({"code": request["code"], "display_last_expr": request.get("display_last_expr", True),
                                    "nonce": nonce})
        try:
            if len(frame) <= PIPE_BYTES:  # it fits in the pipe: the worker finds it there when it wakes
                cells.write_all(self.requests, frame)
                os.kill(self.worker, signal.SIGCONT)
            else:  # a stopped worker cannot drain the pipe
                os.kill(self.worker, signal.SIGCONT)
                cells.write_all(self.requests, frame)
        except OSError:
            pass  # the worker is gone: waitpid says how
        self.worker_exit = self._wait_for_stop()
        self.kill_leftovers()
        if self.worker_exit is not None:
            return {"status": "died", "exit": self.worker_exit}
        if unread_bytes(self.requests):  # the stop came from an earlier cell still running, not from this one
            read_available(self.reports, REPORT_BYTES)
            return {**violation("the worker stopped without taking this cell's request: the previous cell "
                                "forged its report and is still running"), "previous_cell_lied": True}
        return parse_report(read_available(self.reports, REPORT_BYTES), nonce)

    def _wait_for_stop(self) -> int | None:
        """None once the worker has stopped; its exit code if it ended instead."""
        _, status = os.waitpid(self.worker, os.WUNTRACED)
        return None if os.WIFSTOPPED(status) else os.waitstatus_to_exitcode(status)

    def kill_leftovers(self) -> None:
        """Processes a cell started do not outlive it: a setsid() grandchild included (we are its subreaper)."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            victims = self.leftovers()
            if not victims:
                return
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.0005)  # SIGKILL lands asynchronously

    def leftovers(self) -> list[int]:
        """Live processes below us other than the worker; the common case, none, costs three reads of /proc."""
        orphans = [pid for pid in cells.children(os.getpid()) if pid != self.worker]
        self.reap(orphans)
        found = []
        for child in orphans + cells.children(self.worker):  # the worker reaps its own dead at its next cell
            if not cells.is_zombie(child):
                found += [child, *cells.live_descendants(child)]
        return found

    def reap(self, orphans: list[int]) -> None:
        """Reap dead orphans (never the worker, whose status only _wait_for_stop may take)."""
        for child in orphans:
            try:
                os.waitpid(child, os.WNOHANG)
            except ChildProcessError:
                pass

    def close(self) -> None:
        if self.worker_exit is None:
            os.kill(self.worker, signal.SIGKILL)
            os.waitpid(self.worker, 0)
            self.worker_exit = -signal.SIGKILL
        self.kill_leftovers()


def first_to_die_of_oom() -> None:
    """Over the session's memory limit the kernel must kill the worker, whose report says oom, and not the
    supervisor or the launcher, which look as big (all are forks of one interpreter) and would say nothing."""
    dumpable = _libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # after a uid change /proc/self is root's until this
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")  # raising it needs no privilege
    except OSError:
        pass
    _libc.prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0)


def read_available(fd: int, cap: int) -> bytes:
    """What a non-blocking pipe holds now, up to cap + 1 bytes (so that going over shows)."""
    chunks, total = [], 0
    while total <= cap:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def unread_bytes(fd: int) -> int:
    """How many bytes wait in a pipe (either end)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]


def parse_report(data: bytes, nonce: str) -> dict:
    """The worker's report must be exactly one frame holding a known status and this cell's nonce; anything
    else is a violation."""
    header = cells.FRAME_HEADER
    if len(data) > REPORT_BYTES:
        return violation(f"the cell's report is over {REPORT_BYTES} bytes")
    if len(data) < header.size or header.unpack_from(data)[0] != len(data) - header.size:
        return violation("the cell's report is not one whole frame")
    try:
        report = json.loads(data[header.size:])
    except (ValueError, RecursionError):
        return violation("the cell's report is not JSON")
    if not isinstance(report, dict) or report.get("status") not in WORKER_STATUSES:
        return violation("the cell's report has no known status")
    if report.get("nonce") != nonce:
        return violation("the cell's report does not answer this cell's request (a report the cell wrote itself)")
    if not isinstance(report.get("traceback"), (str, type(None))):
        return violation("the cell's report has a traceback that is not text")
    return {"status": report["status"], "traceback": report["traceback"]}


def violation(what: str) -> dict:
    return {"status": "error", "traceback": None, "violation": what}


def serve_fds(supervisor: Supervisor, control_fd: int) -> None:
    """Local backend: one frame per cell in, one frame per cell out, over control_fd."""
    cells.write_all(control_fd, cells.encode_frame({"ready": True, "pid": os.getpid()}))
    while True:
        request = cells.read_frame(control_fd)
        if request is None:
            return
        reply = supervisor.run_cell(request)
        cells.write_all(control_fd, cells.encode_frame(reply))
        if reply["status"] == "died":
            return


def serve_stream(supervisor: Supervisor, sentinel: bytes, frames_fd: int) -> None:
    """Docker backend: frames on frames_fd; each cell ends with the sentinel on stdout and sentinel+reply on stderr.

    The host's sentinel only frames the ready line: the worker was forked while it was in memory. The one
    that ends cells is drawn now, after the fork, and handed over in that line."""
    secret = b"\x00\x1b" + secrets.token_hex(16).encode() + b"\x1b\x00"
    cells.write_all(cells.SAVED_STDOUT_FD, sentinel)
    ready = {"ready": True, "sentinel": secret.decode(), "oom_kills": container_traces.oom_kill_count()}
    cells.write_all(cells.SAVED_STDERR_FD, sentinel + json.dumps(ready).encode() + b"\n")
    while True:
        request = cells.read_frame(frames_fd)
        if request is None:
            return
        reply = supervisor.run_cell(request)
        cells.write_all(cells.SAVED_STDOUT_FD, secret)
        cells.write_all(cells.SAVED_STDERR_FD, secret + json.dumps(reply).encode() + b"\n")
        if reply["status"] == "died":
            return


def container_main() -> None:
    """Entry point of a Docker REPL (`python -I supervisor.py`), configured by its first stdin frame."""
    config = cells.read_frame(0)
    if config is None:
        return
    sys.path.extend(config.get("sys_path", []))
    os.umask(0o077)
    # A fresh name, not one a former kernel could have planted something at.
    home = tempfile.mkdtemp(prefix="session-", dir="/tmp")
    os.environ.update(HOME=home, TMPDIR=home)
    os.chdir(home)
    for name in config.get("preload", []):
        __import__(name)
    kernel = cells.Kernel()  # before the rlimits: its saved descriptors sit above RLIMIT_NOFILE
    cells.apply_rlimits(config["memory_mb"], config["cpu_s"], config["pids"], config["file_mb"],
                        config["open_files"], True)
    # Cells get an empty stdin, so input() cannot swallow the host's next frame.
    frames_fd = os.dup(0)
    os.set_inheritable(frames_fd, False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if syscall_filter.unsupported_reason() is None:  # the local backend's filter (the container has no_new_privs)
        syscall_filter.install()
    supervisor = Supervisor(kernel, private_fds=[frames_fd])
    try:
        serve_stream(supervisor, config["sentinel"].encode(), frames_fd)
    finally:
        supervisor.close()
        container_traces.wipe_own_traces()


if __name__ == "__main__":
    container_main()
