"""How many CPUs this process may really use, and torch's thread count set from it.

``os.cpu_count()`` counts the machine's CPUs, not the ones this process may run on: a CPU affinity
mask (taskset, ``--cpuset-cpus``) or a cgroup CPU quota (``--cpus``, Kubernetes limits) can allow far
fewer. Torch threads beyond those CPUs spin against each other and against other processes (two
evals on two cores ran 13x slower than one), so the count comes from the affinity mask and the
quota, whichever is smaller.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _v2_quota(root: Path, own_cgroup: str) -> float | None:
    """The smallest ``cpu.max`` quota from this process's cgroup up to the root, in CPUs."""
    quotas = []
    folder = root / own_cgroup.lstrip("/")
    while True:
        limit = folder / "cpu.max"
        if limit.is_file():
            quota, _, period = limit.read_text().partition(" ")
            if quota != "max" and period.strip():
                quotas.append(int(quota) / int(period))
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    return min(quotas) if quotas else None


def _v1_quota(root: Path) -> float | None:
    for folder in (root / "cpu,cpuacct", root / "cpu"):
        quota, period = folder / "cpu.cfs_quota_us", folder / "cpu.cfs_period_us"
        if quota.is_file() and period.is_file():
            value = int(quota.read_text())
            return value / int(period.read_text()) if value > 0 else None
    return None


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup (v2 or v1) in CPUs, or None when there is none."""
    try:
        for line in proc_cgroup.read_text().splitlines():
            hierarchy, _, path = line.split(":", 2)
            if hierarchy == "0":
                quota = _v2_quota(root, path)
                if quota is not None:
                    return quota
        return _v1_quota(root)
    except (OSError, ValueError):
        return None


def available_cpus() -> dict:
    """The CPUs this process may use: {"affinity", "cgroup_quota", "available"}."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota()
    available = max(1, min(affinity, math.ceil(quota))) if quota else affinity
    return {"affinity": affinity, "cgroup_quota": quota, "available": available}


def set_torch_threads(requested: int | None = None) -> dict:
    """Set torch's intra-op threads to ``requested`` or to the available CPUs; returns what was decided."""
    import torch

    cpus = available_cpus()
    threads = requested or cpus["available"]
    torch.set_num_threads(threads)
    return {**cpus, "torch_threads": torch.get_num_threads()}
