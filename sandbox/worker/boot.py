"""Start-up inside the sandbox: rlimits, privilege drop, seccomp, init and the first holder.

Standard library only; run as ``python3 -c "...; from worker.boot import main; main()" CONFIG_JSON``
with this package on ``sys.path`` (the process backend) or loaded from the
host's stream (docker, see ``mux.py``). The host side is ``tinyact.sandbox.process``.

Processes (inside one sandbox)::

    init         first process: subreaper, reaps orphans, watches the host's
     |           lifeline pipe; kills everything when it closes
     +-- holder  holds one session's globals (see worker.py)
"""

from __future__ import annotations

import binascii
import ctypes
import errno
import json
import os
import resource
import select
import signal
import socket
import sys

from . import procs, reset
from .protocol import Channel
from .procs import SCRATCH_FD
from .worker import Worker

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


def apply_limits(limits: dict) -> None:
    mb = 1024 * 1024
    cpu = int(limits["cpu_s"])
    settings = [
        (resource.RLIMIT_AS, int(limits["memory_mb"]) * mb),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_FSIZE, int(limits["file_size_mb"]) * mb),
        (resource.RLIMIT_NOFILE, int(limits["open_files"])),
        (resource.RLIMIT_NPROC, int(limits["processes"])),
        (resource.RLIMIT_CORE, 0),
    ]
    for res, value in settings:
        soft, hard = value if isinstance(value, tuple) else (value, value)
        _, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
            soft = min(soft, hard)
        resource.setrlimit(res, (soft, hard))


def drop_privileges(uid: int) -> None:
    """Become `uid` (its own group, no supplementary groups) when running as root."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def install_seccomp(program: bytes) -> None:
    """Set no_new_privs and install a BPF program (built by the host with libseccomp)."""

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    if not program or len(program) % 8:
        raise OSError(errno.EINVAL, f"a seccomp program of {len(program)} bytes")
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    for option, arg, ptr in ((_PR_SET_NO_NEW_PRIVS, 1, None), (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog))):
        if libc.prctl(option, arg, ptr, 0, 0) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"prctl({option}): {errno.errorcode.get(e, e)}")


def init_loop(lifeline: int, isolation: str) -> None:
    """PID 'init' of the sandbox: reap orphans, end everything when the host goes."""
    # Wake up on SIGCHLD to reap at once: zombies count against RLIMIT_NPROC,
    # and every execute leaves one (the previous holder).
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        ready, _, _ = select.select([lifeline, wake_r], [], [], 1.0)
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
            ready.remove(wake_r)
        if ready:
            try:
                data = os.read(lifeline, 64)
            except OSError:
                data = b""
            if not data:
                break
        alive = True
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
                if pid and st:
                    procs.debug(f"init: {pid} ended with status {st}")
            except ChildProcessError:
                alive = False
                break
            if pid == 0:
                break
        if not alive:
            procs.debug("init: no children left")
            break
    procs.debug("init: exiting")
    if isolation in ("none", "docker"):
        # No pid namespace of our own: end our session's group (we made it with setsid).
        try:
            os.killpg(0, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)


def main() -> None:
    run(json.loads(sys.argv[1]))


def run(cfg: dict) -> None:
    """Start init and the first holder on the channel fd named in `cfg`."""
    sys.stdin = open(os.devnull)  # noqa: SIM115
    for name in ("channel_fd", "lifeline_fd"):  # fd 3 is reserved for the scratch directory
        if int(cfg[name]) == SCRATCH_FD:
            new = os.dup(SCRATCH_FD)
            os.close(SCRATCH_FD)
            cfg[name] = new
    chan_fd, lifeline = int(cfg["channel_fd"]), int(cfg["lifeline_fd"])
    procs.LOG["fd"] = os.dup(2)  # fd 2 itself is redirected per execute
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversize writes fail with EFBIG instead
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # A session and process group of our own, visible in our pid namespace:
    # executors leave it and come back to it (see Worker._execute).
    try:
        os.setsid()
    except OSError:
        pass
    procs.prctl(procs.PR_SET_CHILD_SUBREAPER, 1)
    if cfg.get("reusable"):
        reset.not_dumpable()  # init and the template: out of reach of the code of the runs (reset.py)
    if cfg.get("die_with_parent"):
        procs.prctl(procs.PR_SET_PDEATHSIG, signal.SIGKILL)
    holder = os.fork()
    if holder != 0:
        os.close(chan_fd)
        init_loop(lifeline, cfg["isolation"])
        return
    os.close(lifeline)
    chan = Channel(socket.socket(fileno=chan_fd))
    checks: dict = {}
    try:
        if cfg.get("drop_privileges", True):
            drop_privileges(int(cfg.get("uid", 65534)))
        os.makedirs(cfg["scratch_root"], exist_ok=True)
        main_dir = os.path.join(cfg["scratch_root"], "main")
        os.makedirs(main_dir, 0o700, exist_ok=True)
        fd = os.open(main_dir, os.O_RDONLY | os.O_DIRECTORY)
        os.dup2(fd, SCRATCH_FD, inheritable=True)
        os.close(fd)
        os.chdir(cfg["scratch"])
        apply_limits(cfg["limits"])
        checks["rlimits"] = True
        if cfg.get("seccomp_bpf"):
            install_seccomp(binascii.a2b_base64(cfg["seccomp_bpf"]))
            checks["seccomp"] = True
        procs.prctl(procs.PR_SET_CHILD_SUBREAPER, 1)
        worker = Worker(cfg, chan)
    except BaseException as e:  # noqa: BLE001
        chan.send({"op": "hello", "ok": False, "error": f"{type(e).__name__}: {e}"})
        os._exit(2)
    chan.send(
        {
            "op": "hello",
            "ok": True,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "python": sys.version.split()[0],
            "checks": checks,
        }
    )
    worker.serve()
