"""The interpreter that runs cells inside a sandbox: the worker half of a session (supervisor.py is the other).

This file runs inside the sandbox, in the process that executes the model's code, so it imports only the
standard library and holds nothing the host trusts: no control channel, no end-of-cell marker. It restores
the stdio descriptors a cell may have closed, reports each cell's status to its supervisor over a pipe and
then stops itself (SIGSTOP); the supervisor believes a cell is over only when it sees that stop, so a cell
that writes a fake report and keeps running still meets its deadline. Each report echoes the nonce of the
request it answers, so a report a cell writes by itself does not pass for the worker's.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import linecache
import os
import resource
import signal
import struct
import sys
import traceback

FRAME_HEADER = struct.Struct(">I")
# Cell stdio is redirected back to these if a cell closed or replaced them.
SAVED_STDOUT_FD = 1000
SAVED_STDERR_FD = 1001
# A report must fit in the pipe to the supervisor (64 KiB) so the worker never blocks before it stops; JSON
# may spell a character in 6 bytes.
TRACEBACK_CHARS = 8000


def read_exactly(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> dict | None:
    header = read_exactly(fd, FRAME_HEADER.size)
    if header is None:
        return None
    body = read_exactly(fd, FRAME_HEADER.unpack(header)[0])
    return None if body is None else json.loads(body)


def encode_frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return FRAME_HEADER.pack(len(body)) + body


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def apply_rlimits(memory_mb: int, cpu_s: int, pids: int, file_mb: int, open_files: int, limit_pids: bool) -> None:
    """Limits the kernel enforces on itself and every process it starts (they are inherited and cannot be raised)."""
    with open("/proc/self/statm") as statm:
        baseline = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    address_space = baseline + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb * 2**20, file_mb * 2**20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limit_pids:  # only meaningful where the session has a uid of its own
        resource.setrlimit(resource.RLIMIT_NPROC, (pids + 1, pids + 1))  # +1: the supervisor
    # A write past RLIMIT_FSIZE should be an OSError the cell can see, not a silent SIGXFSZ death.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class Kernel:
    """Runs cells in one persistent namespace, like a notebook kernel."""

    def __init__(self) -> None:
        self.namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
        self.cell_count = 0
        self.pid = os.getpid()
        sys.argv[:] = [""]
        os.dup2(1, SAVED_STDOUT_FD, inheritable=False)
        os.dup2(2, SAVED_STDERR_FD, inheritable=False)
        self.stdout = self.stderr = None
        self.restore_stdio()

    def restore_stdio(self) -> None:
        os.dup2(SAVED_STDOUT_FD, 1)
        os.dup2(SAVED_STDERR_FD, 2)
        if self.stdout is None or sys.stdout is not self.stdout or self.stdout.closed:
            self.stdout = self.open_text(1)
        if self.stderr is None or sys.stderr is not self.stderr or self.stderr.closed:
            self.stderr = self.open_text(2)
        sys.stdout, sys.stderr = self.stdout, self.stderr

    @staticmethod
    def open_text(fd: int) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "w", closefd=False)
        # Line buffering so a cell that later hangs has still shown its progress; backslashreplace so a lone
        # surrogate prints instead of raising.
        return io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", errors="backslashreplace", line_buffering=True)

    def run(self, code: str, display_last_expr: bool) -> dict:
        self.cell_count += 1
        filename = f"<cell {self.cell_count}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self.restore_stdio()
        reap_children()  # what the supervisor killed after the previous cell
        status, tb_text = "ok", None
        try:
            body, last_expr = compile_cell(code, filename, display_last_expr)
            exec(body, self.namespace)
            if last_expr is not None:
                value = eval(last_expr, self.namespace)
                if value is not None:
                    print(repr(value))
        except MemoryError as exc:
            status, tb_text = "oom", format_exception(exc)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt included: the session must survive them
            status, tb_text = "error", format_exception(exc)
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:
                    pass
            if os.getpid() != self.pid:  # a process the cell forked got here: it must never speak the protocol
                os._exit(1)
        self.restore_stdio()
        return {"status": status, "traceback": tb_text}


def compile_cell(code: str, filename: str, display_last_expr: bool):
    """Compile a cell; with display_last_expr a trailing expression is split off so its value can be shown."""
    tree = ast.parse(code, filename, "exec")
    if display_last_expr and tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
        return compile(tree, filename, "exec"), compile(last, filename, "eval")
    return compile(tree, filename, "exec"), None


def format_exception(exc: BaseException) -> str:
    tb = exc.__traceback__
    # Drop the kernel's own frames so the traceback starts in the cell.
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:
        text = f"{type(exc).__name__}: {exc!r}\n"
    if len(text) > TRACEBACK_CHARS:  # the head says where, the tail what
        half = TRACEBACK_CHARS // 2
        text = f"{text[:half]}\n... [traceback cut] ...\n{text[-half:]}"
    return text


def children(pid: int) -> list[int]:
    """pid's child processes, whichever of its threads started them (zombies included)."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:  # os.open/os.read: this runs after every cell, and a text-mode open costs several times more
            fd = os.open(f"/proc/{pid}/task/{task}/children", os.O_RDONLY)
        except OSError:
            continue
        try:
            found.extend(int(child) for child in os.read(fd, 1 << 16).split())
        finally:
            os.close(fd)
    return found


def live_descendants(root: int) -> list[int]:
    """Every live process below root (zombies left out: they are dead, and have no children)."""
    found, frontier = [], [root]
    while frontier:
        for child in children(frontier.pop()):
            if not is_zombie(child):
                found.append(child)
                frontier.append(child)
    return found


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True  # gone already


def reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def worker_loop(kernel: Kernel, requests_fd: int, reports_fd: int) -> None:
    """The worker's life: stop, be resumed with a request waiting, run it, report, stop again."""
    # The kernel was made before the fork (its saved descriptors sit above RLIMIT_NOFILE): it is ours now.
    kernel.pid = os.getpid()
    while True:
        os.kill(os.getpid(), signal.SIGSTOP)
        request = read_frame(requests_fd)
        if request is None:  # the supervisor is gone
            os._exit(0)
        nonce = request.pop("nonce", None)  # out of the dict, which a cell could find through the garbage collector
        report = kernel.run(request["code"], request["display_last_expr"])
        write_all(reports_fd, encode_frame({**report, "nonce": nonce}))
