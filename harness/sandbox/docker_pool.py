"""Long-lived, locked-down containers that host many session REPLs each, and the reaper of labelled leftovers.

A `docker run` costs ~300 ms here and a `docker exec` ~80 ms, so containers are started once and reused;
each session is one REPL process inside one of them, under a uid of its own so that sessions sharing a
container cannot signal or read each other (files are private by umask 077, /tmp is sticky).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from harness.sandbox.image import KERNEL_IN_IMAGE, KERNEL_SCRIPT, KIND_LABEL, PYTHON_LABEL, engine_is_local, host_mounts
from harness.sandbox.limits import SandboxLimits

LABEL = "harness.sandbox"
RUN_LABEL, HOST_LABEL, PID_LABEL = "harness.sandbox.run", "harness.sandbox.host", "harness.sandbox.pid"
CONTAINER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                 "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class PooledContainer:
    container: object
    python: str
    sys_path: tuple[str, ...]
    sessions: int = 0
    served: int = 0
    broken: bool = False


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
    """Up to `containers` containers of `sessions_per_container` sessions each; acquire() blocks when all are full."""

    def __init__(self, client, image: str, limits: SandboxLimits, containers: int, sessions_per_container: int,
                 runtime: str | None, cpus: float, packages: tuple[str, ...], recycle_after: int = 500) -> None:
        self.client, self.image_name, self.limits, self.runtime, self.cpus = client, image, limits, runtime, cpus
        self.max_containers, self.per_container, self.recycle_after = containers, sessions_per_container, recycle_after
        self.run_id = uuid.uuid4().hex[:12]
        image_labels = client.images.get(image).labels or {}
        self.kind = image_labels.get(KIND_LABEL, "dockerfile")
        self.python = image_labels.get(PYTHON_LABEL, "/usr/local/bin/python3")
        self.mounts = host_mounts(packages) if self.kind == "hostpy" else None
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
                usable = [entry for entry in self.pool if not entry.broken and entry.sessions < self.per_container
                          and entry.served < self.recycle_after]
                if usable:
                    entry = min(usable, key=lambda candidate: candidate.sessions)
                    break
                if len(self.pool) < self.max_containers:
                    entry = self._start_container()
                    self.pool.append(entry)
                    break
                if not self.changed.wait(timeout=max(deadline - time.monotonic(), 0)):
                    raise TimeoutError(f"no free sandbox slot within {timeout_s:g} s "
                                       f"({self.max_containers} containers x {self.per_container} sessions)")
            entry.sessions += 1
            entry.served += 1
            return entry

    def release(self, entry: PooledContainer) -> None:
        with self.changed:
            entry.sessions -= 1
            retire = entry.sessions == 0 and (entry.broken or entry.served >= self.recycle_after or self.closed)
            if retire and entry in self.pool:
                self.pool.remove(entry)
            self.changed.notify_all()
        if retire:
            self._remove(entry)

    def mark_broken(self, entry: PooledContainer) -> None:
        with self.changed:
            entry.broken = True

    def _start_container(self) -> PooledContainer:
        limits, per = self.limits, self.per_container
        options = dict(
            network_mode="none", mem_limit=f"{limits.memory_mb * per}m", memswap_limit=f"{limits.memory_mb * per}m",
            pids_limit=limits.pids * per + 8, nano_cpus=int(self.cpus * 1e9), read_only=True,
            tmpfs={"/tmp": f"size={limits.scratch_mb * per}m,mode=1777"}, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], user="65534:65534", init=True, hostname="sandbox",
            environment=CONTAINER_ENV, working_dir="/tmp", detach=True, ipc_mode="private",
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
            if self.local_engine:  # the kernel as it is now, not as it was when the image was built
                binds.append(Mount(KERNEL_IN_IMAGE, str(KERNEL_SCRIPT), type="bind", read_only=True))
            options["mounts"] = binds
            python, sys_path = self.mounts.python, self.mounts.sys_path
        sleeper = "import signal\nwhile True: signal.pause()"
        container = self.client.containers.run(self.image_name, [python, "-I", "-S", "-c", sleeper], **options)
        return PooledContainer(container, python, sys_path)

    def _remove(self, entry: PooledContainer) -> None:
        try:
            entry.container.remove(force=True)
        except Exception:  # already removed by a reaper or by hand: nothing left to leak
            pass

    def close(self) -> None:
        with self.changed:
            self.closed = True
            entries, self.pool = list(self.pool), []
            self.changed.notify_all()
        for entry in entries:
            self._remove(entry)
        reap_containers(self.client, run_id=self.run_id)
