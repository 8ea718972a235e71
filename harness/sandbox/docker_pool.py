"""Long-lived, locked-down containers, each lent to one session at a time, and the reaper of labelled leftovers.

A `docker run` costs ~300 ms here and a `docker exec` ~80 ms, so containers are started once and reused.
A container holds one session at a time, so its /tmp (a tmpfs of the session's scratch size) and /dev/shm
are that session's alone: nothing one session writes there can be read, planted or filled up for another.
Its IPC namespace (System V shared memory, message queues, semaphores, POSIX message queues) is the
container's, so it is lent to one session at a time too. When a session ends its kernels remove their files
and IPC objects; the pool checks that /tmp (but for the mount points of a host interpreter that lives under
/tmp), /dev/shm and /dev/mqueue are empty and that no System V object is left before lending the container
again, and replaces it otherwise.

A container lives only as long as the harness process that started it: its main process (under docker-init)
reads its stdin, which the harness holds open through an attach socket; when the harness dies, kill -9
included, the engine closes that stdin (StdinOnce), the main process exits and the container stops, taking
every session process with it. The engine then removes it (auto_remove); `reap_containers` at start-up
removes any left by a harness that died before it attached.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from harness.sandbox.image import KIND_LABEL, PYTHON_LABEL, SCRIPTS_IN_IMAGE, SESSION_SCRIPTS, engine_is_local, host_mounts
from harness.sandbox.limits import SandboxLimits

LABEL = "harness.sandbox"
RUN_LABEL, HOST_LABEL, PID_LABEL = "harness.sandbox.run", "harness.sandbox.host", "harness.sandbox.pid"
SCRATCH_PLACES = ("/tmp", "/dev/shm", "/dev/mqueue")
# Run as nobody in a container before it is lent again: exits 0 only if no session left a trace in it.
TRACES_CHECK = """import os, sys
kept = set(sys.argv[1:])
files = [entry for place in {places!r} for entry in os.listdir(place) if place != "/tmp" or entry not in kept]
ipc = [line for kind in ("shm", "msg", "sem") for line in open("/proc/sysvipc/" + kind).readlines()[1:]]
sys.exit(bool(files or ipc))"""
INTERPRETER_MB = 256  # the supervisor and the worker's own interpreter, on top of the session's memory limit
CONTAINER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                 "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class PooledContainer:
    container: object
    python: str
    sys_path: tuple[str, ...]
    in_use: bool = False
    served: int = 0
    broken: bool = False
    lifeline: object = None  # the harness's end of the container's stdin: the container ends when it closes
    # Kill sweeps still removing a dead session's files and IPC objects: waited for before the container is lent again.
    pending_sweeps: list[str] = field(default_factory=list)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_containers(client, everything: bool = False, run_id: str | None = None) -> list[str]:
    """Remove labelled containers: of one run, of dead harness processes on this host, or (everything) all."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        labels = container.labels
        if run_id is not None:
            doomed = labels.get(RUN_LABEL) == run_id
        elif everything:
            doomed = True
        else:
            owner = labels.get(PID_LABEL, "")
            doomed = labels.get(HOST_LABEL) == socket.gethostname() and owner.isdigit() and not pid_alive(int(owner))
        if doomed:
            try:
                container.remove(force=True)
                removed.append(container.name)
            except Exception:  # already gone (another reaper won the race)
                pass
    return removed


class ContainerPool:
    """Up to `containers` containers, one session each; acquire() blocks while all are lent."""

    def __init__(self, client, image: str, limits: SandboxLimits, containers: int, runtime: str | None, cpus: float,
                 packages: tuple[str, ...], recycle_after: int = 500) -> None:
        self.client, self.image_name, self.limits, self.runtime, self.cpus = client, image, limits, runtime, cpus
        self.max_containers, self.recycle_after = containers, recycle_after
        self.run_id = uuid.uuid4().hex[:12]
        image_labels = client.images.get(image).labels or {}
        self.kind = image_labels.get(KIND_LABEL, "dockerfile")
        self.python = image_labels.get(PYTHON_LABEL, "/usr/local/bin/python3")
        self.mounts = host_mounts(packages) if self.kind == "hostpy" else None
        # A host interpreter under /tmp (a virtualenv in a temporary checkout) is mounted there: not a leftover.
        mounted = (*self.mounts.read_only, *self.mounts.masked) if self.mounts else ()
        self.mount_points_in_tmp = sorted({path.split("/")[2] for path in mounted if path.startswith("/tmp/")})
        self.local_engine = engine_is_local(client)
        self.pool: list[PooledContainer] = []
        self.changed = threading.Condition()
        self.closed = False

    def acquire(self, timeout_s: float = 600.0) -> PooledContainer:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while True:
                if self.closed:
                    raise RuntimeError("the docker sandbox is closed")
                free = [entry for entry in self.pool if not entry.in_use and not entry.broken]
                if free:
                    entry = free[0]
                    break
                if len(self.pool) < self.max_containers:
                    entry = self._start_container()
                    self.pool.append(entry)
                    break
                if not self.changed.wait(timeout=max(deadline - time.monotonic(), 0)):
                    raise TimeoutError(f"no free sandbox container within {timeout_s:g} s "
                                       f"({self.max_containers} containers, one session each)")
            entry.in_use = True
            entry.served += 1
            return entry

    def release(self, entry: PooledContainer) -> None:
        """Lend the container again only if the session left nothing behind in it."""
        self._finish_sweeps(entry)
        retire = entry.broken or entry.served >= self.recycle_after or self.closed or not self._left_no_trace(entry)
        with self.changed:
            entry.in_use = False
            if retire and entry in self.pool:
                self.pool.remove(entry)
            self.changed.notify_all()
        if retire:
            self._remove(entry)

    def _finish_sweeps(self, entry: PooledContainer, patience_s: float = 10.0) -> None:
        """Wait for the kill sweeps of this container's dead sessions; one that does not end retires the container."""
        deadline = time.monotonic() + patience_s
        while entry.pending_sweeps:
            try:
                state = self.client.api.exec_inspect(entry.pending_sweeps[0])
            except Exception:
                entry.broken = True
                return
            if not state.get("Running", True) and state.get("ExitCode") is not None:
                entry.pending_sweeps.pop(0)
            elif time.monotonic() > deadline:
                entry.broken = True
                return
            else:
                time.sleep(0.01)

    def _left_no_trace(self, entry: PooledContainer) -> bool:
        check = TRACES_CHECK.format(places=SCRATCH_PLACES)
        try:
            result = entry.container.exec_run([entry.python, "-I", "-S", "-c", check, *self.mount_points_in_tmp],
                                              user="65534:65534")
        except Exception:  # the container is gone or stuck: it is not lent again either way
            return False
        return result.exit_code == 0

    def mark_broken(self, entry: PooledContainer) -> None:
        with self.changed:
            entry.broken = True

    def _start_container(self) -> PooledContainer:
        limits = self.limits
        memory = f"{limits.memory_mb + INTERPRETER_MB}m"
        options = dict(
            network_mode="none", mem_limit=memory, memswap_limit=memory,
            pids_limit=limits.pids + 8, nano_cpus=int(self.cpus * 1e9), read_only=True,
            tmpfs={place: f"size={limits.scratch_mb}m,nr_inodes={limits.scratch_files},mode=1777"
                   for place in ("/tmp", "/dev/shm")}, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], user="65534:65534", init=True, hostname="sandbox",
            environment=CONTAINER_ENV, working_dir="/tmp", ipc_mode="private", auto_remove=True,
            stdin_open=True, detach=False,  # docker-py sets StdinOnce only for an attached container
            labels={LABEL: "1", RUN_LABEL: self.run_id, HOST_LABEL: socket.gethostname(), PID_LABEL: str(os.getpid())},
            log_config={"type": "none", "config": {}}, name=f"harness-sandbox-{self.run_id}-{len(self.pool)}-{uuid.uuid4().hex[:6]}",
        )
        if self.runtime:
            options["runtime"] = self.runtime
        python, sys_path = self.python, ()
        if self.mounts is not None:
            from docker.types import Mount

            binds = [Mount(path, path, type="bind", read_only=True) for path in self.mounts.read_only]
            binds += [Mount(path, None, type="tmpfs", read_only=True, tmpfs_size=65536) for path in self.mounts.masked]
            if self.local_engine:  # the session scripts as they are now, not as they were when the image was built
                binds += [Mount(f"{SCRIPTS_IN_IMAGE}/{name}", str(script), type="bind", read_only=True)
                          for name, script in SESSION_SCRIPTS.items()]
            options["mounts"] = binds
            python, sys_path = self.mounts.python, self.mounts.sys_path
        until_stdin_closes = "import os\nwhile os.read(0, 65536): pass"
        container = self.client.containers.create(self.image_name, [python, "-I", "-S", "-c", until_stdin_closes],
                                                  **options)
        try:
            lifeline = self.client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
            container.start()
        except BaseException:
            self._remove(PooledContainer(container, python, sys_path))
            raise
        return PooledContainer(container, python, sys_path, lifeline=lifeline)

    def _remove(self, entry: PooledContainer) -> None:
        try:
            entry.container.remove(force=True)
        except Exception:  # already removed by a reaper, by hand or by the engine: nothing left to leak
            pass
        if entry.lifeline is not None:
            entry.lifeline.close()

    def close(self) -> None:
        with self.changed:
            self.closed = True
            entries, self.pool = list(self.pool), []
            self.changed.notify_all()
        for entry in entries:
            self._remove(entry)
        reap_containers(self.client, run_id=self.run_id)
