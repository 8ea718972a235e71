"""The Docker backend: one REPL (guest/supervisor.py) per session inside a pooled container, driven over the exec socket.

The host side enforces everything: the deadline and the byte cap while reading the exec stream, a cap on
every other byte it keeps for the session, and on expiry a kill of every process of the session's uid (the
REPL and whatever it started), followed by a replay in a fresh REPL. docker-py has no exec timeout and no
exec kill, hence this module.
"""

from __future__ import annotations

import os
import random
import secrets
import select
import signal
import socket
import struct
import threading
import time

from harness.sandbox.base import Sandbox
from harness.sandbox.docker_pool import ContainerPool, PooledContainer, reap_containers
from harness.sandbox.image import DEFAULT_IMAGE, ENTRY_IN_IMAGE, SCRIPTS_IN_IMAGE, build_image
from harness.sandbox.limits import SandboxLimits
from harness.sandbox.local import DEFAULT_PACKAGES
from harness.sandbox.protocol import (
    ControlLimitExceeded,
    PreviousCellLied,
    ProtocolError,
    cell_reply,
    control_cap,
    decode_message,
    encode_frame,
)
from harness.sandbox.session import CellOutcome, OutputCapture, Session

STREAM_HEADER = struct.Struct(">BxxxL")  # Docker's multiplexed stream: stream id (1 stdout, 2 stderr), length
START_TIMEOUT_S = 120.0
# Starting a REPL imports sympy and numpy (~0.6 s of CPU); too many at once starve the running cells.
REPL_STARTS = threading.BoundedSemaphore(max(2, (os.cpu_count() or 2)))
# Run in the container as the session's uid: kill its processes, then remove its files and IPC objects.
KILL_UID = f"""import os, signal, sys
try: os.kill(-1, signal.SIGKILL)
except ProcessLookupError: pass
sys.path.insert(0, {SCRIPTS_IN_IMAGE!r})
import container_traces
container_traces.wipe_own_traces()"""
OOM_KILLS = f"import sys\nsys.path.insert(0, {SCRIPTS_IN_IMAGE!r})\nimport container_traces\nprint(container_traces.oom_kill_count())"


class SentinelStream:
    """One of stdout/stderr: passes bytes through until the end-of-cell sentinel, which it swallows.

    Never keeps more than max_bytes: a status line that does not end, or bytes that keep coming after the
    sentinel, are a ControlLimitExceeded."""

    def __init__(self, sentinel: bytes, with_status: bool, max_bytes: int) -> None:
        self.sentinel, self.with_status, self.max_bytes = sentinel, with_status, max_bytes
        self.pending = bytearray()
        self.status_line: bytes | None = None
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        """Append data; returns the part that is certainly cell output."""
        self.pending += data
        output = self._take_output()
        if len(self.pending) > self.max_bytes:  # what is kept back, not what passes through
            raise ControlLimitExceeded(f"the session sent more than {self.max_bytes} bytes past the end of a cell "
                                       "or in one status line")
        return output

    def _take_output(self) -> bytes:
        if self.finished:
            return b""
        at = self.pending.find(self.sentinel)
        if at < 0:
            keep = len(self.sentinel) - 1  # the sentinel may be split across chunks
            cut = max(len(self.pending) - keep, 0)
            output = bytes(self.pending[:cut])
            del self.pending[:cut]
            return output
        output = bytes(self.pending[:at])
        rest = self.pending[at + len(self.sentinel):]
        if self.with_status:
            newline = rest.find(b"\n")
            if newline < 0:
                self.pending = bytearray(self.pending[at:])
                return output
            self.status_line = bytes(rest[:newline])
            rest = rest[newline + 1:]
        self.pending, self.finished = bytearray(rest), True
        return output

    def reset(self) -> None:
        self.finished, self.status_line = False, None


class DockerKernel:
    """One REPL (`python -I supervisor.py`) in a container, as uid `uid`, reached through a hijacked exec socket."""

    def __init__(self, pool: ContainerPool, entry: PooledContainer, uid: int, preload: tuple[str, ...]) -> None:
        self.pool, self.entry, self.uid, self.limits = pool, entry, uid, pool.limits
        self.api = pool.client.api
        sentinel = b"\x00\x1b" + secrets.token_hex(16).encode() + b"\x1b\x00"  # frames the ready line only
        self.cap = control_cap(self.limits)
        self.streams = {1: SentinelStream(sentinel, False, self.cap), 2: SentinelStream(sentinel, True, self.cap)}
        self.buffer = bytearray()
        self.eof = False
        with REPL_STARTS:
            self.exec_id = self.api.exec_create(
                entry.container.id, [entry.python, "-I", "-B", ENTRY_IN_IMAGE], stdin=True, user=f"{uid}:{uid}",
                workdir="/tmp")["Id"]
            self.socket = self.api.exec_start(self.exec_id, socket=True)._sock
            config = {"sentinel": sentinel.decode(), "preload": list(preload), "sys_path": list(entry.sys_path),
                      "memory_mb": self.limits.memory_mb, "cpu_s": self.limits.cpu_s, "pids": self.limits.pids,
                      "file_mb": self.limits.scratch_mb, "open_files": self.limits.open_files}
            self.socket.sendall(encode_frame(config))
            try:
                ready = self._collect(time.monotonic() + START_TIMEOUT_S, OutputCapture(1 << 20))
                message = decode_message(self.streams[2].status_line or b"{}") if ready == "done" else {}
            except ProtocolError as exc:
                ready, message = str(exc), {}
        if message.get("ready") is not True or not isinstance(message.get("sentinel"), str):
            self.close()
            raise RuntimeError(f"the docker sandbox REPL did not start ({ready})")
        # The container's OOM kills so far: a kernel that dies was killed for memory only if this count grew.
        self.oom_kills_at_start = message.get("oom_kills") if type(message.get("oom_kills")) is int else None
        # The supervisor drew the sentinel that ends cells after it forked the worker: no cell can know it.
        for stream in self.streams.values():
            stream.sentinel = message["sentinel"].encode()

    def run_cell(self, code: str, timeout_s: float, display_last_expr: bool) -> CellOutcome:
        deadline = time.monotonic() + timeout_s
        capture = OutputCapture(self.limits.max_output_bytes)
        for stream in self.streams.values():
            stream.reset()
        try:
            self.socket.sendall(encode_frame({"code": code, "display_last_expr": display_last_expr}))
        except OSError:
            return self._died(capture)

        def captured() -> dict:
            return dict(stdout=bytes(capture.parts["stdout"]), stderr=bytes(capture.parts["stderr"]),
                        truncated=capture.overflowed)

        try:
            ended = self._collect(deadline, capture)
            if ended == "done":
                status, traceback, exit_code = cell_reply(decode_message(self.streams[2].status_line))
                if status == "died":
                    return self._died(capture, exit_code)
                return CellOutcome(status, traceback=traceback, **captured())
        except ProtocolError as exc:  # the session's side broke the protocol: its failure, not the harness's
            self.kill()
            status = "control_limit" if isinstance(exc, ControlLimitExceeded) else "protocol"
            return CellOutcome(status, details=[str(exc)], previous_cell_lied=isinstance(exc, PreviousCellLied), **captured())
        if ended == "eof":
            return self._died(capture)
        self.kill()
        return CellOutcome("timeout" if ended == "deadline" else "output_limit", **captured())

    def _collect(self, deadline: float, capture: OutputCapture) -> str:
        """Read the exec stream until the cell's end ("done"), "eof", "deadline" or "overflow"."""
        names = {1: "stdout", 2: "stderr"}
        while not (self.streams[1].finished and self.streams[2].finished):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "deadline"
            if self.eof:
                return "eof"
            readable, _, _ = select.select([self.socket], [], [], remaining)
            if not readable:
                continue
            try:
                data = self.socket.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                self.eof = True
            self.buffer += data
            while len(self.buffer) >= STREAM_HEADER.size:
                stream_id, size = STREAM_HEADER.unpack_from(self.buffer)
                if size > self.cap:
                    raise ControlLimitExceeded(f"a {size}-byte chunk on the exec stream (the limit is {self.cap})")
                if len(self.buffer) < STREAM_HEADER.size + size:
                    break
                payload = bytes(self.buffer[STREAM_HEADER.size: STREAM_HEADER.size + size])
                del self.buffer[: STREAM_HEADER.size + size]
                if stream_id in self.streams:
                    capture.add(names[stream_id], self.streams[stream_id].feed(payload))
            if capture.overflowed:
                return "overflow"
        return "done"

    def _died(self, capture: OutputCapture, exit_code: int | None = None) -> CellOutcome:
        """The REPL ended: exit_code is the worker's as its supervisor reported it, else the exec's."""
        oom = False
        try:
            if exit_code is None:
                exit_code = self.api.exec_inspect(self.exec_id).get("ExitCode")
                if exit_code is not None and exit_code > 128:
                    exit_code = -(exit_code - 128)  # a shell-style status: killed by signal (status - 128)
            if exit_code == -signal.SIGKILL:  # the OOM killer's signal, but also anyone's: ask the memory cgroup
                oom = self._oom_kills() > (self.oom_kills_at_start or 0)
        except Exception:  # the container itself is gone
            self.pool.mark_broken(self.entry)
        self.kill()
        return CellOutcome("died", bytes(capture.parts["stdout"]), bytes(capture.parts["stderr"]),
                           truncated=capture.overflowed, exit_code=exit_code, oom_killed=oom)

    def _oom_kills(self) -> int:
        result = self.entry.container.exec_run([self.entry.python, "-I", "-S", "-c", OOM_KILLS], user="65534:65534")
        return int(result.output.decode().strip()) if result.exit_code == 0 else 0

    def kill(self) -> None:
        """Kill every process of this session's uid in the container (the REPL and anything it left)."""
        # Hang up first: an unread stream stalls the engine's copy of this exec, and with it the next exec.
        self.eof = True
        if self.socket.fileno() != -1:
            self.socket.close()
        if self.pool.local_engine and os.geteuid() == 0:
            killed_here = kill_uid_on_host(self.uid)  # fast and needs no help from the engine
        else:
            killed_here = False
        try:
            # Detached: an attached exec_start can wait forever on a stream the engine never closes.
            sweep = self.api.exec_create(self.entry.container.id, [self.entry.python, "-I", "-S", "-c", KILL_UID],
                                         user=f"{self.uid}:{self.uid}")
            self.api.exec_start(sweep["Id"], detach=True)
            if killed_here:
                # The processes are already dead; the sweep's removal of files and IPC objects only has to end
                # before the container is lent again (the rebuilt kernel runs as a fresh uid), so the pool
                # waits for it then, and the cell's result is not held up by an exec on a loaded engine.
                self.entry.pending_sweeps.append(sweep["Id"])
                return
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                state = self.api.exec_inspect(sweep["Id"])
                if not state.get("Running", True) and state.get("ExitCode") is not None:
                    break
                time.sleep(0.01)
            else:
                raise TimeoutError("the kill sweep did not finish")
        except Exception:  # the container is unusable: retire it rather than trust what is left in it
            self.pool.mark_broken(self.entry)

    def close(self) -> None:
        """End the REPL: EOF on its stdin makes it exit; if it does not within a second, kill its uid's processes."""
        if self.socket.fileno() == -1:
            return
        try:
            self.socket.shutdown(socket.SHUT_WR)  # only a half-close reaches the process as EOF
            deadline = time.monotonic() + 1.0
            while not self.eof and time.monotonic() < deadline:
                if select.select([self.socket], [], [], max(deadline - time.monotonic(), 0))[0]:
                    self.eof = not self.socket.recv(1 << 16)
        except OSError:
            self.eof = True
        self.socket.close()
        if not self.eof:
            self.kill()


class DockerSandbox(Sandbox):
    """Sessions as REPLs in a pool of long-lived containers, one session per container at a time (docker_pool.py).

    containers is how many sessions can be open at once; more wait for a container to be released."""

    backend = "docker"

    def __init__(self, limits: SandboxLimits | None = None, image: str = DEFAULT_IMAGE, containers: int = 16,
                 runtime: str | None = None, cpus: float = 1.0,
                 packages: tuple[str, ...] = DEFAULT_PACKAGES, preload: tuple[str, ...] = ("sympy", "numpy"),
                 build: bool = True, client=None) -> None:
        super().__init__(limits)
        import docker

        self.client = client or docker.from_env(timeout=120)
        self.client.ping()
        reap_containers(self.client)  # containers of harness processes that died without cleaning up
        if build:
            try:
                self.client.images.get(image)
            except docker.errors.ImageNotFound:
                build_image(self.client, image, packages=packages)
        self.preload = preload
        self.pool = ContainerPool(self.client, image, self.limits, containers, runtime, cpus,
                                  tuple(dict.fromkeys(packages + preload)))
        self._uid_base = random.randrange(100_000, 1_000_000_000)
        self._uid_counter = 0

    def _allocate_uid(self) -> int:
        with self._lock:
            self._uid_counter += 1
            return self._uid_base + self._uid_counter

    def _new_session(self, display_last_expr: bool) -> Session:
        entry = self.pool.acquire()

        def start() -> DockerKernel:
            # A fresh uid per kernel, even when rebuilding one session: a detached kill sweep of the previous
            # kernel may still be running as the old uid.
            return DockerKernel(self.pool, entry, self._allocate_uid(), self.preload)

        def on_close(session: Session) -> None:
            self.pool.release(entry)
            self._forget(session)

        try:
            return Session(start, self.limits, display_last_expr, on_close=on_close)
        except BaseException:
            self.pool.release(entry)
            raise

    def _shutdown(self) -> None:
        self.pool.close()


def kill_uid_on_host(uid: int, patience_s: float = 5.0) -> bool:
    """SIGKILL every host process running as uid until none is left (the engine is local and we are root)."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as handle:
                    owner = next(int(line.split()[1]) for line in handle if line.startswith("Uid:"))
                if owner == uid:
                    found = True
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, StopIteration, ValueError):
                continue
        if not found:
            return True
        time.sleep(0.005)
    return False
