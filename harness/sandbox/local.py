"""The local backend: sessions forked from a warm zygote into fresh Linux namespaces (guest/zygote.py, jail.py).

Host side only: start the zygote, ask it for sessions, and drive each session's kernel over its own
socket and pipes. Deadlines, the output byte cap and kills are enforced here, with a pidfd of the
session's pid-1 so a kill can never hit a recycled pid.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

from harness.sandbox.base import Sandbox
from harness.sandbox.guest import GUEST_DIR
from harness.sandbox.isolation import local_isolation
from harness.sandbox.limits import SandboxLimits
from harness.sandbox.protocol import (
    ControlLimitExceeded,
    FrameReader,
    PreviousCellLied,
    ProtocolError,
    cell_reply,
    control_cap,
    encode_frame,
)
from harness.sandbox.session import CellOutcome, OutputCapture, Session

ZYGOTE_SCRIPT = GUEST_DIR / "zygote.py"
DEFAULT_PACKAGES = ("sympy", "mpmath", "numpy")
START_TIMEOUT_S = 120.0  # the zygote imports sympy and numpy once; a loaded 2-core machine can take a while


class Frames:
    """Frames read from a non-blocking socket, a piece at a time, never more than the control cap."""

    def __init__(self, sock: socket.socket, max_bytes: int) -> None:
        self.sock = sock
        self.reader = FrameReader(max_bytes)
        self.closed = False

    def pump(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
        self.reader.feed(data)

    def pop(self) -> dict | None:
        return self.reader.pop()


class LocalKernel:
    """One live kernel: pid 1 of its own namespaces, reached over a socket (frames) and two pipes (output)."""

    def __init__(self, control: socket.socket, stdout_fd: int, stderr_fd: int, limits: SandboxLimits) -> None:
        self.control, self.stdout_fd, self.stderr_fd, self.limits = control, stdout_fd, stderr_fd, limits
        self.frames = Frames(control, control_cap(limits))
        self.pidfd: int | None = None
        self.exit_code: int | None = None  # the supervisor's, from its launcher
        self.worker_exit: int | None = None  # the worker's, from the supervisor: how the cell's process ended
        self.oom_killed = False  # the session's memory cgroup killed it
        deadline = time.monotonic() + START_TIMEOUT_S
        control.settimeout(START_TIMEOUT_S)
        message, fds, _, _ = socket.recv_fds(control, 65536, 1)
        if fds:
            self.pidfd = fds[0]
        control.setblocking(False)
        os.set_blocking(stdout_fd, False)
        os.set_blocking(stderr_fd, False)
        try:
            self.frames.reader.feed(message)
            ready = self._next_frame(deadline)
        except ProtocolError as exc:
            ready = {"fatal": str(exc)}
        if ready and "fatal" in ready:
            self.close()
            raise RuntimeError(f"the sandbox session could not start:\n{ready['fatal']}")
        if not ready or not ready.get("ready"):
            self.close()
            raise RuntimeError(f"the sandbox session did not start: {ready!r}")

    def _next_frame(self, deadline: float) -> dict | None:
        while True:
            frame = self.frames.pop()
            if frame is not None and "launcher" not in frame:
                return frame
            if self.frames.closed or time.monotonic() > deadline:
                return None
            select.select([self.control], [], [], max(deadline - time.monotonic(), 0))
            self.frames.pump()

    def run_cell(self, code: str, timeout_s: float, display_last_expr: bool) -> CellOutcome:
        deadline = time.monotonic() + timeout_s
        capture = OutputCapture(self.limits.max_output_bytes)
        try:
            self.control.setblocking(True)
            self.control.sendall(encode_frame({"code": code, "display_last_expr": display_last_expr}))
            self.control.setblocking(False)
        except OSError:
            return self._died(capture)
        try:
            return self._follow_cell(deadline, capture)
        except ProtocolError as exc:  # the session's side broke the protocol: its failure, not the harness's
            self.kill()
            status = "control_limit" if isinstance(exc, ControlLimitExceeded) else "protocol"
            return self._outcome(status, capture, details=[str(exc)], previous_cell_lied=isinstance(exc, PreviousCellLied))

    def _follow_cell(self, deadline: float, capture: OutputCapture) -> CellOutcome:
        streams = {self.stdout_fd: "stdout", self.stderr_fd: "stderr"}
        poller = select.poll()
        for fd in (self.control.fileno(), *streams):
            poller.register(fd, select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._stop(capture, "timeout")
            for fd, _ in poller.poll(remaining * 1000):
                if fd in streams:
                    self._drain(fd, streams[fd], capture)
                    if capture.overflowed:
                        return self._stop(capture, "output_limit")
                else:
                    self.frames.pump()
            frame = self.frames.pop()
            if frame is not None and "status" in frame:
                status, traceback, exit_code = cell_reply(frame)
                for fd, name in streams.items():  # whatever the cell wrote before it finished
                    self._drain(fd, name, capture)
                if capture.overflowed:
                    return self._stop(capture, "output_limit")
                if status == "died":
                    self.worker_exit = exit_code
                    return self._died(capture)
                return self._outcome(status, capture, traceback=traceback)
            if frame is not None and "exit" in frame:
                self.exit_code, self.oom_killed = frame["exit"], frame.get("oom_killed", False)
            if frame is not None or self.frames.closed:
                return self._died(capture)

    @staticmethod
    def _drain(fd: int, name: str, capture: OutputCapture) -> None:
        while not capture.overflowed:
            try:
                data = os.read(fd, 1 << 16)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            capture.add(name, data)

    def _outcome(self, status: str, capture: OutputCapture, **extra) -> CellOutcome:
        return CellOutcome(status=status, stdout=bytes(capture.parts["stdout"]), stderr=bytes(capture.parts["stderr"]),
                           truncated=capture.overflowed, **extra)

    def _stop(self, capture: OutputCapture, status: str) -> CellOutcome:
        self.kill()
        return self._outcome(status, capture)

    def _died(self, capture: OutputCapture) -> CellOutcome:
        self._wait_for_exit(deadline=time.monotonic() + 5)
        for fd, name in ((self.stdout_fd, "stdout"), (self.stderr_fd, "stderr")):
            self._drain(fd, name, capture)
        exit_code = self.worker_exit if self.worker_exit is not None else self.exit_code
        return self._outcome("died", capture, exit_code=exit_code, oom_killed=self.oom_killed)

    def _wait_for_exit(self, deadline: float) -> None:
        """The launcher reports the kernel's end once every process of its namespace is gone."""
        while self.exit_code is None and not self.frames.closed and time.monotonic() < deadline:
            try:
                frame = self.frames.pop()
                if frame is None:
                    select.select([self.control], [], [], max(deadline - time.monotonic(), 0))
                    self.frames.pump()
            except ProtocolError:
                return  # the kill already sent is all there is to do; the launcher's word is lost
            if frame is not None and "exit" in frame:
                self.exit_code, self.oom_killed = frame["exit"], frame.get("oom_killed", False) is True

    def kill(self) -> None:
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._wait_for_exit(deadline=time.monotonic() + 5)

    def close(self) -> None:
        if self.control.fileno() == -1:
            return
        self.kill()
        for fd in (self.stdout_fd, self.stderr_fd, self.pidfd):
            if fd is not None:
                os.close(fd)
        self.control.close()


class Zygote:
    """The warm fork server process; one per LocalSandbox."""

    def __init__(self, isolation: str, packages: tuple[str, ...], preload: tuple[str, ...], warm: bool,
                 python: str) -> None:
        self.requests, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = {"request_fd": theirs.fileno(), "isolation": isolation, "packages": list(packages),
                  "preload": list(preload), "warm": warm, "harness_pid": os.getpid()}
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [python, "-I", "-B", str(ZYGOTE_SCRIPT), json.dumps(config)], pass_fds=[theirs.fileno()], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        theirs.close()
        self.lock = threading.Lock()
        self.requests.settimeout(START_TIMEOUT_S)
        try:
            hello = self.requests.recv(65536)
        except socket.timeout:
            hello = b""
        if not hello:
            self.process.kill()
            raise RuntimeError(f"the sandbox zygote failed to start:\n{self.process.stderr.read().decode()[-3000:]}")
        self.process.stderr.close()
        self.requests.settimeout(None)

    def spawn(self, request: dict, fds: list[int]) -> None:
        with self.lock:
            socket.send_fds(self.requests, [json.dumps(request).encode()], fds)

    def close(self) -> None:
        self.requests.close()  # the zygote sees EOF, kills its launchers and exits
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class LocalSandbox(Sandbox):
    """Sessions forked from one warm zygote; isolation "auto" picks the strongest mode this host allows."""

    backend = "local"

    def __init__(self, limits: SandboxLimits | None = None, isolation: str = "auto",
                 packages: tuple[str, ...] = DEFAULT_PACKAGES, preload: tuple[str, ...] = ("sympy", "numpy"),
                 warm: bool = True, python: str | None = None) -> None:
        super().__init__(limits)
        report = local_isolation()
        self.isolation = report.mode if isolation == "auto" else isolation
        if self.isolation == "none":
            why = "; ".join(report.reasons) if isolation == "auto" else "isolation='none' was requested"
            message = (f"harness sandbox: no Linux namespaces ({why}): model code runs WITHOUT filesystem, network "
                       "or process isolation, only rlimits and a scratch directory")
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            print(f"WARNING: {message}", file=sys.stderr)
        self._uid_base = random.randrange(2_000_000, 2_000_000_000)
        self._uid_counter = 0
        self.zygote = Zygote(self.isolation, tuple(dict.fromkeys(packages + preload)), preload, warm,
                             python or sys.executable)

    def _next_uid(self) -> int:
        with self._lock:
            self._uid_counter += 1
            return self._uid_base + self._uid_counter % 1_000_000

    def _start_kernel(self) -> LocalKernel:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        request = {"uid": self._next_uid(), "limits": self.limits.__dict__}
        try:
            self.zygote.spawn(request, [theirs.fileno(), stdout_write, stderr_write])
        finally:
            theirs.close()
            os.close(stdout_write)
            os.close(stderr_write)
        return LocalKernel(ours, stdout_read, stderr_read, self.limits)

    def _new_session(self, display_last_expr: bool) -> Session:
        return Session(self._start_kernel, self.limits, display_last_expr, on_close=self._forget)

    def _shutdown(self) -> None:
        self.zygote.close()
