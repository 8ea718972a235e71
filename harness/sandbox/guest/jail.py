"""A session's jail on Linux: fresh namespaces, a minimal read-only root, an unprivileged uid.

Standard library and ctypes only: it runs in the zygote's forked children. The order of operations is
the security argument, so it is kept in one place:
  1. the launcher unshares pid, network, mount, IPC and UTS namespaces (plus a user namespace when the
     harness is not root); its next child is pid 1 of the new pid namespace;
  2. its root is a tmpfs holding only read-only bind mounts of the interpreter, its standard library, the
     allowed packages and the shared libraries they link (host_files.py) and /dev/{null,zero,...}: a
     template the zygote mounts once in a mount namespace of its own, which each session's copies. That
     child adds a fresh /proc and a private /tmp capped in bytes and inodes, pivots into the root and
     detaches the old one, so no host path stays reachable;
  3. it drops to the session's own uid (or, in a user namespace, drops every capability) with
     no_new_privs set, re-arms its parent-death signal (a uid change clears it), and installs the seccomp
     filter (syscall_filter.py); the kernel applies rlimits before running any cell.
"""

from __future__ import annotations

import ctypes
import os
import platform

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MNT_DETACH = 0x2
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
PIVOT_ROOT_SYSCALL = {"x86_64": 155, "aarch64": 41}
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    args = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    _check(_libc.mount(args[0], args[1], args[2], ctypes.c_ulong(flags), args[3]), f"mount {target}")


def prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl {option}")


def mount_order(files) -> list[tuple[str, str]]:
    """(kind, path) of a host_files.HostFiles, parents before children, so a package inside a masked dir is bound
    after the mask."""
    entries = [("bind", path) for path in files.read_only] + [("mask", path) for path in files.masked]
    return sorted(entries, key=lambda entry: entry[1].rstrip("/").count("/"))


def enter_namespaces(user_namespace: bool) -> None:
    """Called by the session launcher: its next fork() becomes pid 1 of a fresh pid namespace."""
    _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS, user_namespace)


def enter_template_namespace(user_namespace: bool) -> None:
    """Called once by the zygote: a mount namespace of its own, where the template root can live."""
    _unshare(CLONE_NEWNS, user_namespace)


def _unshare(flags: int, user_namespace: bool) -> None:
    if user_namespace:
        # A process may map only its own ids into the namespace it just entered: root inside is the caller outside.
        uid, gid = os.geteuid(), os.getegid()
        unshare(flags | CLONE_NEWUSER)
        with open("/proc/self/setgroups", "w") as handle:
            handle.write("deny")
        with open("/proc/self/uid_map", "w") as handle:
            handle.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as handle:
            handle.write(f"0 {gid} 1")
    else:
        unshare(flags)


def build_template(files, new_root: str) -> None:
    """The read-only part of every session's root, mounted once at new_root in the zygote's own mount namespace.
    A session's mount namespace is a copy of the zygote's, so it starts with the whole tree: one unshare instead
    of two mount calls per bound file."""
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for directory in ("/tmp", "/proc"):
        os.makedirs(new_root + directory)
    _bind_read_only(files, new_root, lambda path: True)
    for link, destination in files.symlinks.items():
        os.symlink(destination, new_root + link)
    for device in DEVICES:
        if os.path.exists(device):
            _make_mountpoint(new_root + device, is_dir=False)
            mount(device, new_root + device, None, MS_BIND)
            mount("none", new_root + device, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC)
    mount("none", new_root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def enter_root(files, new_root: str, owner_uid: int, scratch_mb: int, scratch_files: int) -> None:
    """pid 1 of a session: a private scratch /tmp and /proc on the template, then pivot into it."""
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    # The copied template is locked in a nested user namespace, and pivot_root refuses a locked root: a
    # recursive bind of it onto itself (one call) is this namespace's own.
    mount(new_root, new_root, None, MS_BIND | MS_REC)
    mount("tmpfs", new_root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={scratch_mb}m,nr_inodes={scratch_files},mode=0700,uid={owner_uid},gid={owner_uid}")
    # An interpreter or virtualenv that itself lives under /tmp (a CI checkout, say) is bound again on top.
    _bind_read_only(files, new_root, lambda path: path.startswith("/tmp/"))
    mount("proc", new_root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _pivot_into(new_root)
    _libc.sethostname(b"sandbox", 7)


def _bind_read_only(files, new_root: str, wanted) -> None:
    for kind, path in mount_order(files):
        if not wanted(path):
            continue
        target = new_root + path
        if kind == "mask":
            os.makedirs(target, exist_ok=True)
            mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=64k,mode=0755")
            continue
        _make_mountpoint(target, os.path.isdir(path))
        mount(path, target, None, MS_BIND | MS_REC)
        mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def umount_template(new_root: str) -> None:
    _libc.umount2(new_root.encode(), MNT_DETACH)


def _make_mountpoint(target: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))


def _pivot_into(new_root: str) -> None:
    os.chdir(new_root)
    number = PIVOT_ROOT_SYSCALL.get(platform.machine())
    if number is None:  # no pivot_root number known: chroot is safe only because every host fd is closed later
        os.chroot(".")
    else:
        _check(_libc.syscall(number, b".", b"."), "pivot_root")
        _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")


def drop_privileges(uid: int, in_user_namespace: bool) -> None:
    """Become an unprivileged uid with no capabilities and no way to regain any."""
    if in_user_namespace:
        _drop_all_capabilities()
    else:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    prctl(PR_SET_NO_NEW_PRIVS, 1)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_all_capabilities() -> None:
    for capability in range(64):  # the bounding set first (that needs CAP_SETPCAP), so nothing can come back
        _libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP; EINVAL past the last capability is fine
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")
