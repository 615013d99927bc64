"""A seccomp-BPF deny-list installed by the sandbox worker, written with ctypes.

Standard library only: this file is copied into the sandbox next to
``_worker.py`` and runs under whatever python3 the sandbox has (no libseccomp
binding needed). The filter is installed once, before any user code runs, and
every process the worker forks or execs inherits it (filters cannot be removed).

What it does, per system call (x86_64 and aarch64):

- another architecture, or the x32 ABI on x86_64 -> kill the process;
- ``socket(AF_INET | AF_INET6 | AF_PACKET, ...)`` -> EPERM (AF_UNIX stays: the
  worker's channel and fork hand-over use it);
- ``clone`` with any namespace flag -> EPERM; ``clone3`` -> ENOSYS, so glibc
  falls back to ``clone``, whose flags a classic BPF filter can read;
- ptrace, mount and the new mount API, unshare, setns, pivot_root, chroot,
  kernel modules, kexec, bpf, perf_event_open, keyctl, userfaultfd,
  process_vm_*, io_uring, reboot, swap, clock setting, ... -> EPERM;
- everything else -> allowed.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

__all__ = ["DENIED", "install", "supported"]

# seccomp_data layout: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_OFF_NR, _OFF_ARCH = 0, 4


def _off_arg(i: int) -> int:
    return 16 + 8 * i  # low 32 bits of args[i] (little-endian)


# BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

_AF_DENIED = (2, 10, 17)  # AF_INET, AF_INET6, AF_PACKET
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

# name -> (x86_64 nr, aarch64 nr); None where the call does not exist.
_SYSCALLS: dict[str, tuple[int | None, int | None]] = {
    "socket": (41, 198),
    "clone": (56, 220),
    "clone3": (435, 435),
    "ptrace": (101, 117),
    "mount": (165, 40),
    "umount2": (166, 39),
    "unshare": (272, 97),
    "setns": (308, 268),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "userfaultfd": (323, 282),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "acct": (163, 89),
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "adjtimex": (159, 171),
    "clock_adjtime": (305, 266),
    "quotactl": (179, 60),
    "syslog": (103, 116),
    "vhangup": (153, 58),
    "iopl": (172, None),
    "ioperm": (173, None),
}
DENIED = sorted(set(_SYSCALLS) - {"socket", "clone", "clone3"})
"""System calls refused with EPERM whatever their arguments."""

_ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7), "arm64": (1, 0xC00000B7)}


def supported() -> bool:
    """Whether this machine's architecture has a filter here."""
    return platform.machine() in _ARCHES


def _program(machine: str) -> list[tuple[int, int, int, int]]:
    col, audit_arch = _ARCHES[machine]
    nr = {name: nrs[col] for name, nrs in _SYSCALLS.items() if nrs[col] is not None}
    # Labels are resolved after the body is laid out: ("J", op, k, label_true, label_false).
    body: list[tuple] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        ("J", _JEQ_K, audit_arch, None, "kill"),
        (_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if col == 0:  # x32 system calls have bit 30 set
        body.append(("J", _JGE_K, 0x40000000, "kill", None))
    for name in DENIED:
        if name in nr:
            body.append(("J", _JEQ_K, nr[name], "eperm", None))
    body += [
        ("J", _JEQ_K, nr["socket"], "socket", None),
        ("J", _JEQ_K, nr["clone"], "clone", None),
        ("J", _JEQ_K, nr["clone3"], "enosys", None),
        (_RET_K, 0, 0, _RET_ALLOW),
        ("L", "socket"),
        (_LD_W_ABS, 0, 0, _off_arg(0)),
        *[("J", _JEQ_K, af, "eperm", None) for af in _AF_DENIED],
        (_RET_K, 0, 0, _RET_ALLOW),
        ("L", "clone"),
        (_LD_W_ABS, 0, 0, _off_arg(0)),
        ("J", _JSET_K, _CLONE_NS_FLAGS, "eperm", None),
        (_RET_K, 0, 0, _RET_ALLOW),
        ("L", "eperm"),
        (_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
        ("L", "enosys"),
        (_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS),
        ("L", "kill"),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    labels: dict[str, int] = {}
    pc = 0
    for ins in body:
        if ins[0] == "L":
            labels[ins[1]] = pc
        else:
            pc += 1
    out: list[tuple[int, int, int, int]] = []
    for ins in body:
        if ins[0] == "L":
            continue
        if ins[0] == "J":
            _, op, k, lt, lf = ins
            here = len(out) + 1  # jumps are relative to the next instruction
            jt = labels[lt] - here if lt else 0
            jf = labels[lf] - here if lf else 0
            assert 0 <= jt < 256 and 0 <= jf < 256, "seccomp jump out of range"
            out.append((op, jt, jf, k))
        else:
            out.append(ins)
    return out


def install() -> None:
    """Set no_new_privs and install the filter in this process (and its future children).

    Raises OSError when the kernel refuses (no seccomp support).
    """
    machine = platform.machine()
    if machine not in _ARCHES:
        raise OSError(errno.ENOSYS, f"no seccomp filter for architecture {machine}")
    prog = _program(machine)
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class _SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = _SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl(NO_NEW_PRIVS): {errno.errorcode.get(e, e)}")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl(SECCOMP): {errno.errorcode.get(e, e)}")
