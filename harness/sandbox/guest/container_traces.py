"""What a Docker session leaves in its container for the next one, and the container's OOM-kill count.

Runs inside the container (standard library only): at the end of a session as its uid, from the supervisor or
from the host's kill sweep. A container is lent to one session at a time, but its /tmp, /dev/shm, /dev/mqueue
and IPC namespace outlive each session, so each session removes its own files and IPC objects; the host then
checks that nothing is left (docker_pool.TRACES_CHECK) before it lends the container again.
"""

from __future__ import annotations

import ctypes
import os
import shutil

libc = ctypes.CDLL(None, use_errno=True)


def wipe_own_traces() -> None:
    """Remove what this uid left in the container for the next session: files and IPC objects (the host checks
    that none are left)."""
    wipe_own_files()
    remove_own_ipc()


def wipe_own_files(roots: tuple[str, ...] = ("/tmp", "/dev/shm")) -> None:
    """Remove what this uid left in the container's shared scratch places."""
    me = os.getuid()
    for root in roots:
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != me:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


def sysv_objects(kind: str) -> list[tuple[int, set[int]]]:
    """(id, {owner uid, creator uid}) of every System V IPC object of one kind ("shm", "msg" or "sem")."""
    try:
        with open(f"/proc/sysvipc/{kind}") as handle:
            header, *rows = [line.split() for line in handle]
    except (OSError, ValueError):
        return []
    ident = header.index({"shm": "shmid", "msg": "msqid", "sem": "semid"}[kind])
    uid, cuid = header.index("uid"), header.index("cuid")
    return [(int(row[ident]), {int(row[uid]), int(row[cuid])}) for row in rows if len(row) == len(header)]


def remove_own_ipc() -> None:
    """The container's IPC namespace outlives a session: remove the System V shared memory, message queues and
    semaphores this uid created or owns (a segment left behind keeps its memory charged to the container) and
    its POSIX message queues."""
    me, rmid = os.getuid(), 0  # IPC_RMID
    remove = {"shm": lambda ident: libc.shmctl(ident, rmid, None), "msg": lambda ident: libc.msgctl(ident, rmid, None),
              "sem": lambda ident: libc.semctl(ident, 0, rmid)}
    for kind, remove_one in remove.items():
        for ident, owners in sysv_objects(kind):
            if me in owners:
                remove_one(ident)
    wipe_own_files(("/dev/mqueue",))


def oom_kill_count() -> int:
    """How many processes the kernel's OOM killer has killed in this container's memory cgroup (v2, then v1)."""
    for events in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(events) as handle:
                return int(dict(line.split()[:2] for line in handle if line.strip()).get("oom_kill", 0))
        except (OSError, ValueError):
            continue
    return 0
