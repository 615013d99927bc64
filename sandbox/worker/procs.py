"""Process plumbing inside the sandbox: prctl, forks, reaping, killing strays, the log.

Standard library only.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import socket
import time

SCRATCH_FD = 3
"""The session's own scratch directory: /scratch (and the cwd) resolve through /proc/self/fd/3."""

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)
LOG = {"fd": -1}
"""The worker's own log (its stderr at start-up); executors close it (see forget_log)."""


def prctl(option: int, arg: int) -> None:
    _libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def log(text: str) -> None:
    if LOG["fd"] >= 0:
        try:
            os.write(LOG["fd"], (text.rstrip("\n") + "\n").encode())
        except OSError:
            pass


def debug(text: str) -> None:
    if os.environ.get("TINYACT_DEBUG"):
        log(text)


def forget_log() -> None:
    """Close the log in a process that will run the code: it is a file of the host's."""
    fd, LOG["fd"] = LOG["fd"], -1
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def fork_retrying(reap, tries: int = 50) -> int:
    """os.fork(), retried briefly on EAGAIN: processes that were just told to
    end (closed sessions) still count against the process limit for a moment."""
    for i in range(tries):
        try:
            return os.fork()
        except BlockingIOError:
            if i == tries - 1:
                raise
            reap()  # closed forks are zombies until reaped, and zombies count
            time.sleep(0.02)
    raise AssertionError("unreachable")


def dead(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def at_eof(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def children(ppid: int) -> list[int]:
    try:
        with open(f"/proc/{ppid}/task/{ppid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        pass
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
                pids.append(int(name))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def kill_strays(pgid: int | None, keep: set[int], may_have_children: bool) -> None:
    """Kill what the user's code left running, sparing the children in `keep`.

    First the executor's process group `pgid` in one atomic kill (a fork bomb
    cannot outrun it), then, for processes that left the group (setsid), this
    process's children that are not in `keep`: the caller is a subreaper, so
    orphans of the user's processes become its children; repeat until none is
    left (each kill may orphan more).
    """
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    if not may_have_children:
        try:  # one cheap call answers the common case: no child process at all
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
    me = os.getpid()
    give_up = time.monotonic() + 3.0
    while time.monotonic() < give_up:
        strays = [p for p in children(me) if p not in keep]
        if not strays:
            break
        for p in strays:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        for p in strays:
            try:
                os.waitpid(p, 0)
            except OSError:
                pass


def new_scratch(path: str, cwd: str) -> None:
    """Give this process (a new fork) its own copy of the scratch directory, on fd 3, at `path`."""
    src = f"/proc/self/fd/{SCRATCH_FD}"
    try:
        with os.scandir(src) as it:
            empty = next(it, None) is None
        if empty:
            os.mkdir(path, 0o700)
        else:
            import shutil  # here only: it loads bz2 and lzma (2 ms of every sandbox's start)

            shutil.copytree(src, path, symlinks=True)
            os.chmod(path, 0o700)
    except OSError:  # shutil.Error is one too
        os.makedirs(path, 0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    os.dup2(fd, SCRATCH_FD, inheritable=True)
    os.close(fd)
    try:
        os.chdir(cwd)
    except OSError:
        pass


def refresh_if_cpu_spent(cpu_s: float) -> None:
    """RLIMIT_CPU counts per process: a holder that ran a long execute could hit it
    while idle, so hand the state to a fresh fork (this process exits) when over half used."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    if used.ru_utime + used.ru_stime < cpu_s / 2:
        return
    try:
        pid = os.fork()
    except OSError:
        return  # try again after the next execute
    if pid != 0:
        os._exit(0)
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def reap() -> list[int]:
    """Reap every child that has exited, without blocking; their pids."""
    pids = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return pids
        if pid == 0:
            return pids
        pids.append(pid)
