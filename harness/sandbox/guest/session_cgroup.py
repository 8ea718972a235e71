"""One cgroup per sandbox session, so its memory (shared memory, memfd and tmpfs pages included) and its process
count are bounded for the session as a whole, which per-process rlimits cannot do, and so that every session
gets the same CPU share however many processes it runs (63 busy processes in one session would otherwise
take 63 times a neighbour's share of the cores).

Standard library only: the zygote prepares the parent once, each launcher creates its session's child and moves
itself in before forking the kernel, so everything the session starts is born inside. Both hierarchies:
  * cgroup v2: /sys/fs/cgroup/harness-sandbox/zygote-PID/session-PID with memory.max, memory.swap.max = 0,
    pids.max and cpu.weight. The parents hold no process, as v2 requires of a cgroup that hands controllers down;
  * cgroup v1: a child of the zygote's own memory cgroup (memory.limit_in_bytes, and memsw where swap is
    accounted), of its pids cgroup (pids.max) and of its cpu cgroup (cpu.shares).
Where neither can be written (not root, a read-only /sys/fs/cgroup, a container's populated cgroup root),
`prepare` says why and sessions keep only their rlimits.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

MOUNTINFO = "/proc/self/mountinfo"
TOP = "harness-sandbox"
CONTROLLERS = ("memory", "pids", "cpu")
# Each session weighs as much as one busy process (the kernels' defaults), whatever its number of processes;
# the sessions' parent weighs one busy process per core, so that all sessions together can still fill the host.
CPU_WEIGHT_V2, CPU_SHARES_V1 = 100, 1024


@dataclass
class CgroupParents:
    """Where session cgroups go: controller name -> parent directory, and which hierarchy that is."""

    version: int
    parents: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"cgroup v{self.version} ({' + '.join(sorted(self.parents))})"


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, super options) of every cgroup filesystem."""
    found = []
    with open(MOUNTINFO) as handle:
        for line in handle:
            mine, _, theirs = line.partition(" - ")
            fstype, _, options = (theirs.split() + ["", "", ""])[:3]
            if fstype in ("cgroup", "cgroup2"):
                found.append((mine.split()[4], fstype, set(options.split(","))))
    return found


def _own_v1_path(controller: str) -> str:
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return path
    return "/"


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def prepare(zygote_pid: int) -> CgroupParents:
    """Create this zygote's parent cgroup(s); raises OSError with the reason when the host does not allow it."""
    mounts = _mounts()
    unified = next((point for point, fstype, _ in mounts if fstype == "cgroup2"), None)
    if unified and os.path.exists(f"{unified}/cgroup.controllers"):
        with open(f"{unified}/cgroup.controllers") as handle:
            available = set(handle.read().split())
        if "memory" in available:
            return _prepare_v2(unified, available & set(CONTROLLERS), zygote_pid)
    v1 = {controller: point for point, fstype, options in mounts if fstype == "cgroup"
          for controller in CONTROLLERS if controller in options}
    if "memory" not in v1:
        raise OSError(f"no memory controller is mounted ({', '.join(point for point, _, _ in mounts) or 'no cgroup fs'})")
    parents = CgroupParents(1)
    for controller, point in v1.items():
        base = os.path.normpath(f"{point}/{_own_v1_path(controller)}")
        _remove_stale(base)
        parents.parents[controller] = f"{base}/{TOP}-{zygote_pid}"
        os.makedirs(parents.parents[controller], exist_ok=True)
    if "cpu" in parents.parents:
        _write(f"{parents.parents['cpu']}/cpu.shares", str(CPU_SHARES_V1 * (os.cpu_count() or 1)))
    return parents


def _prepare_v2(unified: str, controllers: set[str], zygote_pid: int) -> CgroupParents:
    enable = " ".join(f"+{name}" for name in sorted(controllers))
    _write(f"{unified}/cgroup.subtree_control", enable)
    top = f"{unified}/{TOP}"
    os.makedirs(top, exist_ok=True)
    _write(f"{top}/cgroup.subtree_control", enable)
    _remove_stale(top, prefix="zygote-")
    mine = f"{top}/zygote-{zygote_pid}"
    os.makedirs(mine, exist_ok=True)
    _write(f"{mine}/cgroup.subtree_control", enable)
    if "cpu" in controllers:
        _write(f"{mine}/cpu.weight", str(min(CPU_WEIGHT_V2 * (os.cpu_count() or 1), 10_000)))
    return CgroupParents(2, {name: mine for name in controllers})


def _remove_stale(base: str, prefix: str = f"{TOP}-") -> None:
    """Parents left by zygotes that were killed outright; a populated one stays."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):]
        if name.startswith(prefix) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            remove_all(CgroupParents(0, {"stale": f"{base}/{name}"}), wait_s=0)


def _children(path: str) -> list[str]:
    try:
        return [name for name in os.listdir(path) if os.path.isdir(f"{path}/{name}")]
    except OSError:
        return []


def session_paths(parents: CgroupParents, name: str) -> list[str]:
    return list(dict.fromkeys(f"{parent}/{name}" for parent in parents.parents.values()))


def create_and_enter(parents: CgroupParents, name: str, memory_bytes: int, pids: int) -> list[str]:
    """Make the session's cgroup(s) with their limits and move the calling process in; returns the directories."""
    made = session_paths(parents, name)
    for path in made:
        os.makedirs(path, exist_ok=True)  # one left by a killed launcher whose pid came round again is reused
    for controller, parent in sorted(parents.parents.items()):
        path = f"{parent}/{name}"
        if controller == "memory" and parents.version == 2:
            _write(f"{path}/memory.max", str(memory_bytes))
            if os.path.exists(f"{path}/memory.swap.max"):  # swap is accounted
                _write(f"{path}/memory.swap.max", "0")
        elif controller == "memory":
            _write(f"{path}/memory.limit_in_bytes", str(memory_bytes))
            if os.path.exists(f"{path}/memory.memsw.limit_in_bytes"):  # swap accounting is on
                _write(f"{path}/memory.memsw.limit_in_bytes", str(memory_bytes))
        elif controller == "pids":
            _write(f"{path}/pids.max", str(pids))
        elif controller == "cpu":
            _write(*((f"{path}/cpu.weight", str(CPU_WEIGHT_V2)) if parents.version == 2
                     else (f"{path}/cpu.shares", str(CPU_SHARES_V1))))
    for path in made:
        _write(f"{path}/cgroup.procs", str(os.getpid()))
    return made


class OomCounter:
    """The OOM-kill count of a session's memory cgroup, opened before the launcher enters the session's mount
    namespace (the kernel's pivot_root takes the launcher's view of /sys with it)."""

    def __init__(self, paths: list[str]) -> None:
        self.fd = None
        for path in paths:
            for events in (f"{path}/memory.events", f"{path}/memory.oom_control"):  # v2, v1
                if self.fd is None and os.path.exists(events):
                    self.fd = os.open(events, os.O_RDONLY)
        self.start = self.count()

    def count(self) -> int:
        if self.fd is None:
            return 0
        text = os.pread(self.fd, 4096, 0).decode()
        return int(dict(line.split()[:2] for line in text.splitlines() if line.strip()).get("oom_kill", 0))

    def fired(self) -> bool:
        """Whether the kernel's OOM killer acted inside the session's memory cgroup since it was opened."""
        return self.count() > self.start


def remove_all(parents: CgroupParents, wait_s: float) -> None:
    """The zygote's parent cgroups and any session cgroup still under them."""
    tops = sorted(set(parents.parents.values()))
    remove([f"{top}/{child}" for top in tops for child in _children(top)] + tops, wait_s)


def remove(paths: list[str], wait_s: float = 2.0) -> None:
    """rmdir the cgroups, children first; processes still exiting keep one busy a moment, hence the retries."""
    deadline = time.monotonic() + wait_s
    for path in paths:
        while True:
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.005)
