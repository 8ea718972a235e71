"""A seccomp filter for sandbox sessions: no new namespaces, no mounts, no io_uring, no userfaultfd.

Standard library only (it is installed in the zygote's forked kernels): a classic-BPF program packed with
struct and loaded with prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER). Why each rule:
  * unshare/clone with any CLONE_NEW* flag, and setns: a nested user namespace would give the session
    capabilities over fresh mount namespaces (a 12 GB tmpfs past its scratch limit, say);
  * clone3 answers ENOSYS: its flags sit behind a pointer a filter cannot read, and glibc falls back to clone;
  * the mount family, io_uring (its requests bypass syscall filtering altogether), userfaultfd (a classic
    exploitation aid), bpf, perf_event_open and the keyring: nothing a maths cell needs.
Denied calls fail with EPERM; a syscall of a foreign ABI (x32, or i386 on x86_64) kills the process.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
import sys

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
X32_SYSCALL_BIT = 0x40000000
NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80
# BPF opcodes: ld word at absolute offset, jump if equal / greater-or-equal / any bit set, return constant.
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0_LOW = 0, 4, 16  # struct seccomp_data; args[0]'s low word (little-endian)

# name -> number, per architecture (x86_64: asm/unistd_64.h; aarch64: the generic table).
SYSCALLS = {
    "x86_64": {
        "audit_arch": 0xC000003E, "unshare": 272, "clone": 56, "clone3": 435, "setns": 308,
        "denied": {"mount": 165, "umount2": 166, "pivot_root": 155, "open_tree": 428, "move_mount": 429,
                   "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
                   "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 323,
                   "bpf": 321, "perf_event_open": 298, "add_key": 248, "request_key": 249, "keyctl": 250},
    },
    "aarch64": {
        "audit_arch": 0xC00000B7, "unshare": 97, "clone": 220, "clone3": 435, "setns": 268,
        "denied": {"mount": 40, "umount2": 39, "pivot_root": 41, "open_tree": 428, "move_mount": 429,
                   "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
                   "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "userfaultfd": 282,
                   "bpf": 280, "perf_event_open": 241, "add_key": 217, "request_key": 218, "keyctl": 219},
    },
}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def unsupported_reason() -> str | None:
    """Why no filter can be installed on this host, or None when one can."""
    if platform.system() != "Linux":
        return f"seccomp needs Linux, this is {platform.system()}"
    if platform.machine() not in SYSCALLS:
        return f"no syscall table for {platform.machine()} (known: {', '.join(SYSCALLS)})"
    if sys.byteorder != "little":
        return "the filter reads the low word of a 64-bit argument, which assumes little-endian"
    return None


def program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jump-if-true, jump-if-false, k); BPF jumps go forward only, counted from the next one."""
    table = SYSCALLS[machine]
    head = [(LD_W_ABS, 0, 0, OFFSET_ARCH), (JEQ_K, 1, 0, table["audit_arch"]), (RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
            (LD_W_ABS, 0, 0, OFFSET_NR)]
    if machine == "x86_64":  # x32 numbers reach the same kernel code under other numbers
        head += [(JGE_K, 0, 1, X32_SYSCALL_BIT), (RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)]
    checks = [("DENY", number) for number in (*table["denied"].values(), table["setns"])]
    checks += [("NOSYS", table["clone3"]), ("FLAGS", table["unshare"]), ("FLAGS", table["clone"])]
    tail_start = len(head) + len(checks)
    labels = {"FLAGS": tail_start + 1, "DENY": tail_start + 4, "NOSYS": tail_start + 5}
    body = [(JEQ_K, labels[label] - (len(head) + index) - 1, 0, number) for index, (label, number) in enumerate(checks)]
    tail = [(RET_K, 0, 0, SECCOMP_RET_ALLOW),
            (LD_W_ABS, 0, 0, OFFSET_ARG0_LOW),  # FLAGS: unshare and clone carry their flags in the first argument
            (JSET_K, 1, 0, NAMESPACE_FLAGS),  # any CLONE_NEW* bit: to DENY
            (RET_K, 0, 0, SECCOMP_RET_ALLOW),
            (RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),  # DENY
            (RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS)]  # NOSYS
    return head + body + tail


def install() -> None:
    """Load the filter into this thread (and every process it starts). Needs no_new_privs (or CAP_SYS_ADMIN)."""
    reason = unsupported_reason()
    if reason is not None:
        raise OSError(errno.ENOSYS, reason)
    instructions = program(platform.machine())
    packed = b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in instructions)
    buffer = ctypes.create_string_buffer(packed, len(packed))
    fprog = _SockFprog(len(instructions), ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_SECCOMP): {errno.errorcode.get(error, error)}")
