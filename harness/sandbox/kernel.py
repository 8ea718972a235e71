"""The interpreter loop that runs inside a sandbox: cells in, output and one status per cell out.

This file runs inside the sandbox (forked from the local zygote, or as the REPL process of a Docker
container), so it imports only the standard library and trusts nothing the cells do: it restores the
stdio descriptors a cell may have closed, and after every cell it kills the processes the cell left
behind. Everything that bounds a cell from outside (deadline, byte cap, kill) lives on the host side.

Two ways of talking to the host:
  * "fds" (local backend): frames over a dedicated socket; stdout and stderr are pipes of their own.
  * "stream" (Docker exec): frames arrive on stdin; the end of a cell is a sentinel written on both
    stdout and stderr, because Docker may reorder the two streams relative to each other.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import linecache
import os
import resource
import shutil
import signal
import struct
import sys
import time
import traceback

FRAME_HEADER = struct.Struct(">I")
# Cell stdio is redirected back to these if a cell closed or replaced them.
SAVED_STDOUT_FD = 1000
SAVED_STDERR_FD = 1001


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
        resource.setrlimit(resource.RLIMIT_NPROC, (pids, pids))
    # A write past RLIMIT_FSIZE should be an OSError the cell can see, not a silent SIGXFSZ death.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class Kernel:
    """Runs cells in one persistent namespace, like a notebook kernel."""

    def __init__(self, owns_every_process: bool) -> None:
        # True when every process this uid can signal belongs to this session (own pid namespace, or a uid
        # of its own in a container): then kill(-1) is the cleanup. Otherwise only descendants are killed.
        self.owns_every_process = owns_every_process
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
        self.kill_leftover_processes()
        return {"status": status, "traceback": tb_text}

    def kill_leftover_processes(self) -> None:
        """Processes a cell started do not outlive it: a setsid() grandchild included."""
        killed = False
        if self.owns_every_process:
            try:
                os.kill(-1, signal.SIGKILL)
                killed = True  # ESRCH (nothing to kill) is the common, free case
            except ProcessLookupError:
                pass
        else:
            for pid in descendants(os.getpid()):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                except ProcessLookupError:
                    pass
        reap_children()
        # SIGKILL lands asynchronously: wait until the victims are really gone, so the next cell starts clean.
        deadline = time.monotonic() + 2.0
        still_there = other_live_processes_of_my_uid if self.owns_every_process else lambda: descendants(os.getpid())
        while killed and time.monotonic() < deadline and still_there():
            time.sleep(0.001)
            reap_children()


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
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:
        return f"{type(exc).__name__}: {exc!r}\n"


def descendants(root: int) -> list[int]:
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as handle:
                children = [int(child) for child in handle.read().split()]
        except OSError:
            continue
        found.extend(children)
        frontier.extend(children)
    return found


def other_live_processes_of_my_uid() -> bool:
    me, uid = os.getpid(), os.getuid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            return True
    return False


def reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve_fds(kernel: Kernel, control_fd: int) -> None:
    """Local backend: one frame per cell in, one frame per cell out, over control_fd."""
    write_all(control_fd, encode_frame({"ready": True, "pid": os.getpid()}))
    while True:
        request = read_frame(control_fd)
        if request is None:
            return
        reply = kernel.run(request["code"], request.get("display_last_expr", True))
        write_all(control_fd, encode_frame(reply))


def serve_stream(kernel: Kernel, sentinel: bytes, frames_fd: int) -> None:
    """Docker backend: frames on frames_fd; each cell ends with the sentinel on stdout and sentinel+status on stderr."""
    write_all(SAVED_STDOUT_FD, sentinel)
    write_all(SAVED_STDERR_FD, sentinel + json.dumps({"ready": True}).encode() + b"\n")
    while True:
        request = read_frame(frames_fd)
        if request is None:
            return
        reply = kernel.run(request["code"], request.get("display_last_expr", True))
        write_all(SAVED_STDOUT_FD, sentinel)
        write_all(SAVED_STDERR_FD, sentinel + json.dumps(reply).encode() + b"\n")


def container_main() -> None:
    """Entry point of a Docker REPL (`python -I kernel.py`), configured by its first stdin frame."""
    config = read_frame(0)
    if config is None:
        return
    sys.path.extend(config.get("sys_path", []))
    os.umask(0o077)  # sessions sharing a container must not read each other's files
    home = config.get("home", "/tmp")
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chdir(home)
    for name in config.get("preload", []):
        __import__(name)
    kernel = Kernel(owns_every_process=True)  # before the rlimits: its saved descriptors sit above RLIMIT_NOFILE
    apply_rlimits(config["memory_mb"], config["cpu_s"], config["pids"], config["file_mb"], config["open_files"], True)
    # Cells get an empty stdin, so input() cannot swallow the host's next frame.
    frames_fd = os.dup(0)
    os.set_inheritable(frames_fd, False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        serve_stream(kernel, config["sentinel"].encode(), frames_fd)
    finally:
        kernel.kill_leftover_processes()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    container_main()
