"""Resetting a reusable sandbox between two runs (the opt-in ``reuse`` of the API's pool).

Standard library only. A reusable sandbox keeps a *template* session that never
runs code; each run gets a fork of it. Between runs the template's holder
calls ``reset``, which leaves the sandbox as it was when it started:

- every process but init (PID 1 of the sandbox's pid namespace) and the
  caller is killed with ``kill(-1, SIGKILL)``, repeated until none is left
  (a fork bomb cannot outrun it: a process with SIGKILL pending cannot fork);
- the scratch file system is emptied (every session's folder), and so are the
  other places the sandbox user can write: ``/dev/shm`` is emptied, and a
  writable ``/dev`` is put back as it was at start (new entries go, replaced
  symlinks and folders come back; bwrap's ``/dev`` is mounted read-only);
- System V shared memory, semaphores and message queues are removed
  (``IPC_RMID``); POSIX message queues cannot be listed from inside, so a
  reusable sandbox's seccomp filter refuses ``mq_open`` instead (``seccomp.py``).

Init and the template are not dumpable (``PR_SET_DUMPABLE`` 0): the code of a
run, although it has the same uid, cannot open their ``/proc/PID/mem`` or
file descriptors to leave something behind for the next run.
"""

from __future__ import annotations

import ctypes
import os
import signal
import stat
import time

from .procs import reap

PR_SET_DUMPABLE = 4
IPC_RMID = 0
KILL_WITHIN_S = 3.0
WIPED = ("/dev/shm",)
"""Folders emptied entirely (they are empty when a sandbox starts)."""



def _dev_snapshot() -> dict[str, tuple[int, str | None, int]]:
    """/dev's entries: name -> (file type, symlink target, permission bits)."""
    out: dict[str, tuple[int, str | None, int]] = {}
    try:
        names = os.listdir("/dev")
    except OSError:
        return out
    for name in names:
        path = os.path.join("/dev", name)
        try:
            st = os.lstat(path)
            target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
        except OSError:
            continue
        out[name] = (stat.S_IFMT(st.st_mode), target, stat.S_IMODE(st.st_mode))
    return out


DEV_AT_START = _dev_snapshot()
"""What /dev held when the worker started (imported before any code runs)."""
DEV_MODE = stat.S_IMODE(os.stat("/dev").st_mode) if os.path.isdir("/dev") else 0o755


def not_dumpable() -> None:
    """This process (and the processes it forks, until they set it back) cannot be inspected
    through /proc by other processes of the same uid."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0)")


def dumpable() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)


def reset(scratch_root: str, keep: str, isolation: str) -> str | None:
    """Kill every other process, wipe what the sandbox could write, drop IPC objects.

    ``keep``: the caller's own scratch folder (emptied, not removed). None when
    done; else why not (the host then ends the sandbox instead of reusing it).
    """
    if isolation not in ("bwrap", "unshare"):
        return f"a {isolation} sandbox has no pid namespace of its own: it cannot be reset"
    left = kill_all_others()
    if left:
        return f"{len(left)} process(es) survived SIGKILL: {left[:8]}"
    try:
        os.chmod(scratch_root, stat.S_IMODE(os.stat(scratch_root).st_mode) | 0o700)  # the code may have locked it
        for entry in os.scandir(scratch_root):
            if entry.name == keep:
                _empty(entry.path)
            else:
                _remove(entry.path)
        restore_dev()
        for folder in WIPED:
            if os.path.isdir(folder) and not os.path.islink(folder) and os.access(folder, os.W_OK):
                _empty(folder)
        remove_sysv_ipc()
    except OSError as e:
        return f"wiping the sandbox failed: {e}"
    return None


def restore_dev() -> None:
    """Put /dev back as it was at start, where the sandbox user can write it (bwrap's /dev is
    a tmpfs of its own): new entries removed, symlinks and folders it replaced or
    re-permissioned restored (devices are bind mounts: it cannot remove those)."""
    if os.statvfs("/dev").f_flag & os.ST_RDONLY:  # read-only (bwrap): only /dev/shm's mode can differ
        shm = DEV_AT_START.get("shm")
        if shm and os.path.isdir("/dev/shm") and stat.S_IMODE(os.stat("/dev/shm").st_mode) != shm[2]:
            os.chmod("/dev/shm", shm[2])
        return
    if os.stat("/dev").st_uid == os.geteuid():  # ours (bwrap): the code may have changed its mode
        os.chmod("/dev", DEV_MODE)
    if not os.access("/dev", os.W_OK):
        return
    for name in set(os.listdir("/dev")) - set(DEV_AT_START):
        _remove(os.path.join("/dev", name))
    for name, (kind, target, mode) in DEV_AT_START.items():
        path = os.path.join("/dev", name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_IFMT(st.st_mode) == kind:
            if kind == stat.S_IFLNK and os.readlink(path) == target:
                continue
            if kind == stat.S_IFDIR:
                if stat.S_IMODE(st.st_mode) != mode:
                    os.chmod(path, mode)
                continue
            if kind not in (stat.S_IFLNK, stat.S_IFDIR):
                continue  # a device (bind mount): not the code's to change
        if kind not in (stat.S_IFLNK, stat.S_IFDIR):
            continue
        if st is not None:
            _remove(path)
        if kind == stat.S_IFLNK:
            os.symlink(target, path)  # type: ignore[arg-type]
        else:
            os.mkdir(path)
            os.chmod(path, mode)


def kill_all_others() -> list[int]:
    """SIGKILL every process of the pid namespace but init and this one; those still alive after
    ``KILL_WITHIN_S`` (zombies waiting for init count as gone)."""
    me = os.getpid()
    give_up = time.monotonic() + KILL_WITHIN_S
    while True:
        try:
            os.kill(-1, signal.SIGKILL)  # every process we may signal, except init and us
        except ProcessLookupError:
            pass
        reap()
        left = [pid for pid in _pids() if pid not in (1, me) and not _zombie(pid)]
        if not left or time.monotonic() > give_up:
            return left
        time.sleep(0.002)


def remove_sysv_ipc() -> None:
    """IPC_RMID on every System V shared memory segment, semaphore set and message queue."""
    libc = ctypes.CDLL(None, use_errno=True)
    calls = {"shm": lambda i: libc.shmctl(i, IPC_RMID, None), "sem": lambda i: libc.semctl(i, 0, IPC_RMID),
             "msg": lambda i: libc.msgctl(i, IPC_RMID, None)}
    for kind, rmid in calls.items():
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1 and fields[1].isdigit():
                rmid(int(fields[1]))


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True  # gone


def _empty(folder: str) -> None:
    if folder not in WIPED:  # /dev/shm's own mode is restore_dev's
        os.chmod(folder, 0o700)
    for entry in os.scandir(folder):
        _remove(entry.path)


def _remove(path: str) -> None:
    import shutil  # not at start: it loads bz2 and lzma (2 ms of every sandbox's start)

    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)  # the code may have taken its own permissions away
        shutil.rmtree(path, onerror=_force)
    else:
        os.unlink(path)


def _force(func, path, _exc) -> None:
    """rmtree's retry for a folder the code made unreadable or unwritable (same uid: it may chmod)."""
    import shutil

    try:
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            shutil.rmtree(path, onerror=_force)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
