"""A process budget per sandbox: each sandbox runs as a host uid of its own.

RLIMIT_NPROC counts the processes of a *user* (on the host, whatever user
namespaces lie between), so sandboxes that share a uid share one budget: a
fork bomb in one starves the others. When the host runs as root, every
sandbox leases a distinct uid from a reserved range (``UID_BASE`` +
0..``UID_SLOTS``-1, by default 1,000,000,000 + n: far from any real or
subordinate uid) and its ``Limits.processes`` holds for it alone. A lease is
an exclusive ``flock`` on a file in a root-only directory, held while the
sandbox lives; the kernel drops it when the owner dies, so nothing leaks.

Without root no other uid can be had: the sandboxes of one user share that
user's budget (docker's ``--pids-limit`` cgroup still bounds each container).
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import threading
from pathlib import Path

__all__ = ["UID_BASE", "UID_SLOTS", "UidLease", "lease_uid"]

UID_BASE = int(os.environ.get("TINYACT_UID_BASE", "1000000000"))
UID_SLOTS = 65536
NOBODY = 65534
_LOCK_DIR = Path(os.environ.get("TINYACT_UID_DIR", "/run/tinyact-uids"))
_mutex = threading.Lock()


class UidLease:
    """A uid (and gid of the same number) held by one sandbox until ``release``."""

    def __init__(self, uid: int, fd: int | None) -> None:
        self.uid = uid
        self._fd = fd

    @property
    def own(self) -> bool:
        """True when no other sandbox runs as this uid."""
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def lease_uid(switchable: bool = False) -> UidLease:
    """A uid of its own for a new sandbox; the shared `nobody` (not owned) when none can be had.

    switchable: the sandbox is started by someone who may take any uid (the
    docker engine): then a user other than root leases too, in a directory of
    their own (two users may then rarely pick the same uid).
    """
    if os.geteuid() != 0 and not switchable:
        return UidLease(NOBODY, None)
    lock_dir = _lock_dir()
    start = random.randrange(UID_SLOTS)
    with _mutex:  # flock is per open file: threads of this process must not race for a slot
        for i in range(UID_SLOTS):
            slot = (start + i) % UID_SLOTS
            fd = os.open(lock_dir / str(slot), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue
                raise
            return UidLease(UID_BASE + slot, fd)
    raise OSError(errno.EUSERS, f"all {UID_SLOTS} sandbox uids are in use")


def _lock_dir() -> Path:
    me = os.geteuid()
    fallback = Path(f"/tmp/tinyact-uids-{me}")
    for cand in ((_LOCK_DIR, fallback) if me == 0 else (fallback,)):
        try:
            cand.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = cand.stat()
            if st.st_uid == me and not st.st_mode & 0o077:
                return cand
        except OSError:
            continue
    raise OSError(errno.EACCES, "no private directory for sandbox uid leases")
