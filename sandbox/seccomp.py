"""The sandbox's seccomp filter, built on the host with libseccomp (``pyseccomp``).

The host compiles the filter to BPF once per process and hands the bytes to the
worker, which installs them before any user code runs (``worker/boot.py``): the
sandbox side needs no binding, and the same program serves every backend.
Filters cannot be removed, and every process the code forks or execs inherits it.

What it does:

- ``socket`` / ``socketpair`` of any family but AF_UNIX -> EPERM (default deny:
  inet, inet6, packet, netlink, vsock, alg, bluetooth, ...);
- ``clone`` with any namespace flag -> EPERM; ``clone3`` -> ENOSYS, so glibc
  falls back to ``clone``, whose flags a BPF filter can read;
- ptrace, mount and the new mount API, unshare, setns, pivot_root, chroot,
  kernel modules, kexec, bpf, perf_event_open, keyctl, userfaultfd,
  process_vm_*, io_uring, reboot, swap, clock setting, ... -> EPERM;
- another architecture (and x32 on x86_64) -> kill the process;
- everything else -> allowed.
"""

from __future__ import annotations

import errno
import functools
import os
import socket

__all__ = ["DENIED", "REUSABLE_DENIED", "filter_bpf"]

DENIED = (
    "ptrace", "mount", "umount2", "unshare", "setns", "pivot_root", "chroot", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "init_module", "finit_module",
    "delete_module", "kexec_load", "kexec_file_load", "bpf", "perf_event_open", "keyctl", "add_key",
    "request_key", "userfaultfd", "process_vm_readv", "process_vm_writev", "open_by_handle_at",
    "name_to_handle_at", "io_uring_setup", "io_uring_enter", "io_uring_register", "reboot", "swapon",
    "swapoff", "acct", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "quotactl", "syslog",
    "vhangup", "iopl", "ioperm",
)  # fmt: skip
"""System calls refused with EPERM whatever their arguments."""

_CLONE_NS_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)
"""CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME."""


REUSABLE_DENIED = ("mq_open",)
"""Refused too in a reusable sandbox (``reusable=True``): POSIX message queues outlive the
processes that made them and cannot be listed from inside to be removed between runs."""


@functools.cache
def filter_bpf(reusable: bool = False) -> bytes:
    """The filter as a BPF program (struct sock_filter array) for this machine's architecture.

    Raises SandboxError when libseccomp or its binding is missing.
    """
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as e:  # OSError: the binding found no libseccomp.so.2
        from tinyact.errors import SandboxError, SandboxErrorCode

        raise SandboxError(
            f"the sandbox's seccomp filter needs libseccomp and pyseccomp ({e}); "
            "apt-get install libseccomp2 and pip install pyseccomp",
            code=SandboxErrorCode.START_FAILED,
        ) from None
    f = sc.SyscallFilter(sc.ALLOW)
    f.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    eperm, enosys = sc.ERRNO(errno.EPERM), sc.ERRNO(errno.ENOSYS)
    for name in DENIED + (REUSABLE_DENIED if reusable else ()):
        try:
            f.add_rule(eperm, name)
        except (ValueError, RuntimeError, OSError):
            pass  # the call does not exist on this architecture
    for name in ("socket", "socketpair"):
        f.add_rule(eperm, name, sc.Arg(0, sc.NE, socket.AF_UNIX))
    for flag in _CLONE_NS_FLAGS:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(enosys, "clone3")
    return _export(f.export_bpf)


def _export(method) -> bytes:
    """What a libseccomp export writes to a file descriptor."""
    with os.fdopen(os.memfd_create("seccomp"), "w+b") as fh:
        method(fh)
        fh.seek(0)
        return fh.read()
