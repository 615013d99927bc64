"""Process backend: the worker runs as a local process tree, isolated by the
strongest mechanism this machine has.

bwrap > unshare > none; how each is invoked and which work here is
``isolation.py``. ``none`` is refused unless ``allow_unsafe=True`` and logs a
loud warning.

When the host runs as root each sandbox runs as a host uid of its own
(``uids.py``), so that its process limit is its own; otherwise as the user.

In every mode the worker sets rlimits and installs the seccomp filter before
any user code runs, and starts with an environment that holds no host variables.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Literal

from tinyact.errors import SandboxError, SandboxErrorCode
from tinyact.sandbox.isolation import (
    HIDDEN,
    SANDBOX_DIR,
    SANDBOX_ENV,
    TMP_PREFIX,
    WORKER_DIR,
    Isolation,
    _boot_code,
    _bwrap_argv,
    _extra_ro_paths,
    _as_user,
    _sandbox_python,
    _tmp_root,
    _unshare_argv,
    best_isolation,
    probe_isolation,
)
from tinyact.sandbox.limits import Limits
from tinyact.sandbox.seccomp import filter_bpf
from tinyact.sandbox.session import Channel, RefCounted, Session
from tinyact.sandbox.uids import lease_uid

__all__ = [
    "HIDDEN", "TMP_PREFIX", "Isolation", "ProcessSandbox", "best_isolation", "probe_isolation", "start_process_session",
]  # fmt: skip

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
SWEEP_EVERY_S = 10.0

_libs: dict[int, str] = {}  # pid -> its compiled copy of the worker package
_libs_lock = threading.Lock()
_swept: dict[str, float] = {}  # temp root -> when it was last swept


def worker_lib() -> str:
    """A folder holding the worker package compiled (``.pyc``) for the sandbox's interpreter.

    Made once per host process, readable by every uid, shared read-only by its
    bwrap sandboxes (unshare and none get a copy of it each): a worker that
    compiled its own sources at every start spent milliseconds of CPU on it
    (``-B`` keeps the sandbox from writing ``.pyc`` files, not from reading them).
    Removed when the process exits (or, after a crash, by the next sweep).
    """
    pid = os.getpid()
    with _libs_lock:
        lib = _libs.get(pid)
        if lib is not None and os.path.isdir(lib):
            return lib
        lib = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{pid}-lib-", dir=_tmp_root())
        dst = os.path.join(lib, "worker")
        shutil.copytree(WORKER_DIR, dst, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            subprocess.run([_sandbox_python(), "-I", "-m", "compileall", "-q", dst], check=True, timeout=60,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (OSError, subprocess.SubprocessError) as e:  # it still works, compiling at each start
            log.warning("could not precompile the sandbox worker: %s", e)
        for root, dirs, files in os.walk(lib):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        _link_packages(lib)
        _libs[pid] = lib
        atexit.register(shutil.rmtree, lib, True)
        return lib


def _link_packages(lib: str) -> None:
    """The sandbox's packages (``packages.py``), when installed, as ``lib/packages``: hard links (a copy
    across file systems) in this folder every uid can reach, since the installed folder may sit in a
    home that the sandbox's uid cannot enter."""
    from tinyact.sandbox.packages import installed

    src = installed()
    if src is None:
        return
    dst = os.path.join(lib, "packages")

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    try:
        shutil.copytree(src, dst, copy_function=link)
        for root, dirs, files in os.walk(dst):
            os.chmod(root, 0o755)
    except OSError as e:  # sandboxes still start, with the standard library only
        log.warning("could not give the sandbox its packages from %s: %s", src, e)
        shutil.rmtree(dst, ignore_errors=True)


def _sweep_tmp_dirs() -> None:
    """Remove the host-side temp dirs of sandboxes whose owner process died (each temp root at
    most every ``SWEEP_EVERY_S`` seconds: it lists the folder)."""
    root = Path(_tmp_root())
    now = time.monotonic()
    if now - _swept.get(str(root), -SWEEP_EVERY_S) < SWEEP_EVERY_S:
        return
    _swept[str(root)] = now
    try:
        entries = list(root.glob(f"{TMP_PREFIX}*"))
    except OSError:
        return
    for path in entries:
        try:
            pid = int(path.name[len(TMP_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


class ProcessSandbox(RefCounted):
    """One worker process tree; shared by a session and its forks."""

    backend = "process"

    def __init__(self, isolation: Isolation, limits: Limits, tools: list[str], seccomp: bool = True,
                 reusable: bool = False) -> None:
        self.isolation = isolation
        self.reusable = reusable
        self.limits = limits
        self._refs = 0
        self._lock = threading.Lock()
        _sweep_tmp_dirs()
        self._uid = lease_uid()
        self.host_uid = self._uid.uid if os.geteuid() == 0 else os.geteuid()
        """The host uid the sandbox's processes run as (one of their own when the host is root)."""
        self._tmp: str | None = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=_tmp_root())
        os.chmod(self._tmp, 0o755)
        self._log = open(os.path.join(self._tmp, "worker.log"), "wb")  # noqa: SIM115
        lib = worker_lib()  # readable by the sandbox's uid wherever the package lives
        packages: str | None = os.path.join(lib, "packages")  # numpy, sympy, mpmath when installed (worker_lib)
        packages = packages if os.path.isdir(packages) else None
        if isolation != "bwrap":  # the sandbox sees its own folder only (unshare), or could write there (none)
            shutil.copytree(os.path.join(lib, "worker"), os.path.join(self._tmp, "lib", "worker"))
            lib = os.path.join(self._tmp, "lib")
        popen_user: dict[str, Any] = {}
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        life_r, life_w = os.pipe()
        self._lifeline = life_w
        cfg: dict[str, Any] = {
            "channel_fd": child_sock.fileno(),
            "lifeline_fd": life_r,
            "isolation": isolation,
            "limits": limits.to_dict(),
            "tools": tools,
            "seccomp_bpf": base64.b64encode(filter_bpf(reusable)).decode() if seccomp else None,
            "die_with_parent": True,
            "reusable": reusable,
            "uid": self._uid.uid,
        }
        env = dict(SANDBOX_ENV)
        if isolation == "bwrap":
            py = _sandbox_python()
            cfg["scratch_root"] = f"{SANDBOX_DIR}/scratch"
            cfg["scratch"] = "/scratch"
            prefix, popen_user = _as_user(self._uid.uid)
            argv = [*prefix, *_bwrap_argv(limits.scratch_mb, _extra_ro_paths(py), lib, packages), py, "-E", "-s",
                    "-B", "-c", _boot_code(f"{SANDBOX_DIR}/lib", packages and f"{SANDBOX_DIR}/packages"),
                    json.dumps(cfg)]  # fmt: skip
        else:
            data = os.path.join(self._tmp, "data")
            os.mkdir(data, 0o700)  # private; under unshare a tmpfs of the sandbox's own covers it
            if os.geteuid() == 0:
                os.chown(data, self._uid.uid, self._uid.uid)
            os.symlink("/proc/self/fd/3", os.path.join(self._tmp, "scratch"))
            cfg["scratch_root"] = data
            cfg["scratch"] = os.path.join(self._tmp, "scratch")
            env.update(HOME=cfg["scratch"], TMPDIR=cfg["scratch"])
            if packages and isolation == "unshare":  # bound on this empty folder inside
                os.mkdir(os.path.join(self._tmp, "packages"), 0o755)
            inside = os.path.join(self._tmp, "packages") if packages and isolation == "unshare" else packages
            argv = [_sandbox_python(), "-E", "-s", "-B", "-c", _boot_code(lib, inside), json.dumps(cfg)]
            if isolation == "unshare":
                argv = [*_unshare_argv(self._tmp, data, limits.scratch_mb, self._uid.uid, packages), *argv]
        try:
            self.proc = subprocess.Popen(
                argv,
                pass_fds=(child_sock.fileno(), life_r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                env=env,
                cwd="/",
                start_new_session=True,
                **popen_user,
            )
        except OSError as e:
            child_sock.close()
            parent_sock.close()
            os.close(life_r)
            os.close(life_w)
            self._cleanup_tmp()
            self._uid.release()
            raise SandboxError(
                f"could not start the {isolation} worker: {e}", code=SandboxErrorCode.START_FAILED
            ) from e
        child_sock.close()
        os.close(life_r)
        self._first = Channel(parent_sock)
        self._channels: weakref.WeakSet[Channel] = weakref.WeakSet([self._first])

    def start(self) -> tuple[Channel, dict[str, Any]]:
        """Wait for the worker's hello; the channel of the first session."""
        chan = self._first
        try:
            msg, _ = chan.recv(time.monotonic() + START_TIMEOUT_S)
        except (EOFError, TimeoutError, OSError) as e:
            stderr = self._stderr()
            self.terminate()
            raise SandboxError(
                f"the {self.isolation} sandbox worker failed to start ({type(e).__name__}): {stderr}",
                code=SandboxErrorCode.START_FAILED,
                context={"isolation": self.isolation},
            ) from None
        if msg.get("op") != "hello" or not msg.get("ok"):
            self.terminate()
            raise SandboxError(
                f"the {self.isolation} sandbox worker failed to start: {msg.get('error', msg)}",
                code=SandboxErrorCode.START_FAILED,
                context={"isolation": self.isolation},
            )
        self._refs = 1
        return chan, msg

    def _stderr(self) -> str:
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        return self.log_tail()

    def log_tail(self, n: int = 2000) -> str:
        """The end of the worker's own stderr (start-up failures, worker bugs)."""
        if not self._tmp:
            return ""
        try:
            with open(os.path.join(self._tmp, "worker.log"), "rb") as f:
                return f.read().decode(errors="replace")[-n:]
        except OSError:
            return ""

    def accept_fork(self, chan: Channel, deadline: float, n: int) -> list[tuple[Channel, dict[str, Any]]]:
        msg, fds = chan.recv(deadline, want_fds=True)
        if msg.get("op") == "forked" and msg.get("error") and not fds:
            raise SandboxError(f"fork failed in the sandbox: {msg['error']}", code=SandboxErrorCode.PROTOCOL)
        pids = msg.get("pids") or []
        if msg.get("op") != "forked" or not fds or len(fds) != len(pids):
            for fd in fds:
                os.close(fd)
            raise SandboxError(f"unexpected reply to fork: {msg}", code=SandboxErrorCode.PROTOCOL)
        out = []
        for fd, pid in zip(fds, pids):
            new = Channel(socket.socket(fileno=fd))
            self._channels.add(new)
            out.append((new, {"pid": pid}))
        return out

    def terminate(self) -> None:
        """End the whole sandbox: close the lifeline (init kills all) and kill the launcher.

        Open sessions see the end of their channel at once (their next call
        raises SandboxError WORKER_DIED), whatever the processes are still doing.
        """
        for chan in list(self._channels):
            try:
                chan.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._lifeline is not None:
            try:
                os.close(self._lifeline)
            except OSError:
                pass
            self._lifeline = None  # type: ignore[assignment]
        proc = self.proc
        if proc.poll() is None:
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log.warning("sandbox launcher %d did not exit", proc.pid)
        self._log.close()
        self._cleanup_tmp()
        self._uid.release()

    def _cleanup_tmp(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def start_process_session(
    *,
    isolation: Literal["auto", "bwrap", "unshare", "none"] = "auto",
    limits: Limits,
    tools: dict[str, Any],
    allow_unsafe: bool = False,
    reusable: bool = False,
) -> Session:
    chosen: Isolation = best_isolation() if isolation == "auto" else isolation  # type: ignore[assignment]
    if chosen not in ("bwrap", "unshare", "none"):
        raise SandboxError(f"unknown isolation {isolation!r}; use auto, bwrap, unshare or none")
    if reusable and chosen == "none":
        raise SandboxError("a reusable sandbox needs a pid namespace of its own (bwrap or unshare), not 'none'",
                           code=SandboxErrorCode.BACKEND_UNAVAILABLE)
    if chosen != "none" and isolation != "auto" and not probe_isolation()[chosen][0]:
        raise SandboxError(
            f"isolation {chosen!r} does not work here: {probe_isolation()[chosen][1]}",
            code=SandboxErrorCode.BACKEND_UNAVAILABLE,
        )
    if chosen == "none":
        if not allow_unsafe:
            raise SandboxError(
                "no OS isolation is available (bwrap and unshare both failed); install bubblewrap "
                "(`make system-deps`) or pass allow_unsafe=True to run with rlimits and seccomp only",
                code=SandboxErrorCode.NO_ISOLATION,
            )
        log.warning(
            "!!! tinyact sandbox running WITHOUT OS isolation: the code can read every file "
            "its uid (a uid of its own when root, else yours) can read. Install bubblewrap. !!!"
        )
    box = ProcessSandbox(chosen, limits, sorted(tools), reusable=reusable)
    chan, hello = box.start()
    return Session(chan, box, limits=limits, tools=tools, info=hello)
