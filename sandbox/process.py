"""Process backend: the worker runs as a local process tree, isolated by the
strongest mechanism this machine has.

- ``bwrap``: ``--unshare-all`` (user, pid, net, ipc, uts, cgroup, mount), an
  empty root holding only read-only /usr (and the /bin, /lib symlinks), /proc,
  a minimal /dev and a size-limited tmpfs for scratch files; uid/gid 65534,
  ``--die-with-parent``, ``--new-session``, cleared environment.
- ``unshare``: net, pid, mount, ipc and uts namespaces (plus user namespaces
  when not root: one mapped to root that mounts, one mapping 65534 to the
  user that runs the worker). The file system stays visible, except the
  folders where people's files live (``HIDDEN``: /tmp, /home, /root, ...),
  which the sandbox sees empty. Scratch files live on a size-limited tmpfs
  over a private host temp dir, visible in the sandbox's mount namespace only.
- ``none``: a plain child process. Refused unless ``allow_unsafe=True``; logs
  a loud warning.

When the host runs as root each sandbox runs as a host uid of its own
(``uids.py``), so that its process limit is its own; otherwise as the user.

In every mode the worker sets rlimits and installs the seccomp filter before
any user code runs, and starts with an environment that holds no host variables.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Literal

from tinyact.errors import SandboxError, SandboxErrorCode
from tinyact.sandbox.limits import Limits
from tinyact.sandbox.seccomp import filter_bpf
from tinyact.sandbox.session import Channel, RefCounted, Session
from tinyact.sandbox.uids import NOBODY, lease_uid

__all__ = ["Isolation", "ProcessSandbox", "best_isolation", "probe_isolation", "start_process_session"]

log = logging.getLogger(__name__)

Isolation = Literal["bwrap", "unshare", "none"]
HERE = Path(__file__).resolve().parent
WORKER_DIR = HERE / "worker"  # the package that runs inside, shipped as a unit
SANDBOX_DIR = "/.tinyact"  # inside bwrap: worker code and per-session scratch dirs
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
}
START_TIMEOUT_S = 30.0
TMP_PREFIX = "tinyact-sandbox-"  # + owner pid + "-" + random: host-side files of one sandbox


def _tmp_root() -> str:
    """Where host-side sandbox files go: the temp dir, if uid 65534 can reach it."""
    candidates = [tempfile.gettempdir(), "/tmp", "/dev/shm", "/var/tmp"]
    if os.geteuid() != 0:
        return candidates[0]
    for cand in candidates:
        p = Path(cand)
        try:
            if p.is_dir() and all(q.stat().st_mode & 0o001 for q in (p, *p.parents)):
                return str(p)
        except OSError:
            continue
    return candidates[0]


def _sweep_tmp_dirs() -> None:
    """Remove the host-side temp dirs of sandboxes whose owner process died."""
    root = Path(_tmp_root())
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


def _sandbox_python() -> str:
    """The interpreter inside bwrap: the system one under /usr (always mounted)."""
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(cand) and os.path.realpath(cand).startswith("/usr/"):
            return cand
    return os.path.realpath(sys.executable)


def _boot_code(lib: str) -> str:
    """`python3 -c` code that starts the worker package found in `lib`."""
    return f"import sys; sys.path.insert(0, {lib!r}); from worker.boot import main; main()"


def _host_user(uid: int = NOBODY) -> dict[str, Any]:
    """Popen arguments that start the launcher as `uid` when we are root.

    Run as root, bwrap maps the sandbox user onto host root, and the kernel
    never applies RLIMIT_NPROC to root: a fork bomb would go unchecked. As
    another user, bwrap builds an unprivileged user namespace and the limit holds.
    """
    if os.geteuid() != 0:
        return {}
    return {"user": uid, "group": uid, "extra_groups": []}


def _bwrap_argv(scratch_mb: int, extra_ro: list[str], lib: str | None = None) -> list[str]:
    argv = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--as-pid-1",  # our init is PID 1: the code cannot kill it, not even with kill(-1)
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--uid", "65534",
        "--gid", "65534",
        "--hostname", "sandbox",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/sbin", "/sbin",
        "--symlink", "usr/lib", "/lib",
        "--proc", "/proc",
        "--dev", "/dev",
    ]  # fmt: skip
    if os.path.isdir("/usr/lib64"):
        argv += ["--symlink", "usr/lib64", "/lib64"]
    for path in extra_ro:
        argv += ["--ro-bind", path, path]
    argv += [
        "--perms", "1777", "--size", str(scratch_mb * 1024 * 1024), "--tmpfs", f"{SANDBOX_DIR}/scratch",
        "--symlink", "/proc/self/fd/3", "/scratch",
        "--symlink", "/proc/self/fd/3", "/tmp",
        "--dir", f"{SANDBOX_DIR}/lib",
    ]  # fmt: skip
    argv += ["--ro-bind", os.path.join(lib, "worker") if lib else str(WORKER_DIR), f"{SANDBOX_DIR}/lib/worker"]
    for key, value in {**SANDBOX_ENV, "HOME": "/scratch", "TMPDIR": "/scratch"}.items():
        argv += ["--setenv", key, value]
    argv += ["--remount-ro", "/", "--chdir", "/"]  # only the scratch tmpfs stays writable
    return argv


def _extra_ro_paths(python: str) -> list[str]:
    """Host paths the interpreter needs when it is not under /usr."""
    real = os.path.realpath(python)
    if real.startswith("/usr/"):
        return []
    prefix = Path(real).parent.parent  # e.g. ~/.pyenv/versions/3.11.7
    return [str(prefix)]


@functools.cache
def probe_isolation() -> dict[str, tuple[bool, str]]:
    """Which isolation mechanisms work here: name -> (works, detail). Cached per process."""
    out: dict[str, tuple[bool, str]] = {}
    bwrap = shutil.which("bwrap")
    if not bwrap:
        out["bwrap"] = (False, "bwrap not found (apt-get install bubblewrap)")
    else:
        py = _sandbox_python()
        argv = _bwrap_argv(1, _extra_ro_paths(py))
        # the worker files are bound by _bwrap_argv; just check the interpreter starts
        r = _run([*argv, py, "-c", "print(1)"], **_host_user())
        out["bwrap"] = (r[0], r[1] or bwrap)
    unshare = shutil.which("unshare")
    if not unshare:
        out["unshare"] = (False, "unshare not found (util-linux)")
    else:
        with tempfile.TemporaryDirectory(prefix=TMP_PREFIX + "probe-", dir=_tmp_root()) as probe_dir:
            os.chmod(probe_dir, 0o755)
            os.mkdir(os.path.join(probe_dir, "data"))
            r = _run([*_unshare_argv(probe_dir, os.path.join(probe_dir, "data"), 1, os.geteuid() or NOBODY), "true"])
        out["unshare"] = (r[0], r[1] or unshare)
    out["none"] = (True, "no isolation besides rlimits and seccomp")
    return out


def _run(argv: list[str], **kw: Any) -> tuple[bool, str]:
    try:
        p = subprocess.run(
            argv, capture_output=True, timeout=20, stdin=subprocess.DEVNULL, env=SANDBOX_ENV, cwd="/", **kw
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{type(e).__name__}: {e}"
    if p.returncode != 0:
        return False, p.stderr.decode(errors="replace").strip().splitlines()[-1:][0] if p.stderr else f"exit {p.returncode}"
    return True, ""


# Runs first in the new namespaces: hide the folders where people's own files live behind
# empty tmpfs mounts, put the sandbox's host folder back (through fd 9, opened before),
# mount the size-limited scratch tmpfs, then exec the command.
# Arguments: scratch mount options, the sandbox folder, its scratch root, the folders to hide, "--", argv.
_SETUP_MOUNTS = """set -e
opts=$1 sbx=$2 data=$3
shift 3
exec 9<"$sbx"
while [ "$1" != "--" ]; do mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev tinyact-hidden "$1"; shift; done
shift
mkdir -p "$sbx"
mount --no-canonicalize --rbind /proc/self/fd/9 "$sbx"
exec 9<&-
mount -t tmpfs -o "$opts" tinyact-scratch "$data"
exec "$@"
"""
HIDDEN = ("/tmp", "/var/tmp", "/dev/shm", "/home", "/root", "/run/user", "/srv", "/mnt", "/media")
"""Host folders an unshare sandbox sees empty (the rest of the file system stays readable)."""


def _hidden(keep: str) -> list[str]:
    """The HIDDEN folders that exist here, except those holding `keep` (the interpreter)."""
    out = []
    for path in HIDDEN:
        if os.path.isdir(path) and not os.path.islink(path) and not keep.startswith(path.rstrip("/") + "/"):
            out.append(path)
    return out


def _unshare_argv(sbx: str, data: str, scratch_mb: int, uid: int) -> list[str]:
    """unshare, then the mounts of _SETUP_MOUNTS (`sbx`: the sandbox's host folder, `data`: its scratch root).

    As root the worker drops to `uid` itself. Otherwise the first user namespace
    maps the user to root (to mount), and a second one maps 65534 to the user:
    the worker runs as 65534 with no capability, as under bwrap.
    """
    unshare = shutil.which("unshare") or "unshare"
    argv = [unshare, "--net", "--pid", "--fork", "--mount", "--mount-proc", "--ipc", "--uts", "--kill-child"]
    opts = f"size={scratch_mb}m,mode=0700,nosuid,nodev"
    hidden = _hidden(os.path.realpath(_sandbox_python()))
    if os.geteuid() != 0:
        argv.insert(1, "--map-root-user")  # implies --user
        return [*argv, "/bin/sh", "-c", _SETUP_MOUNTS, "sh", opts, sbx, data, *hidden, "--",
                unshare, "--map-user=65534", "--map-group=65534"]  # fmt: skip
    return [*argv, "/bin/sh", "-c", _SETUP_MOUNTS, "sh", f"{opts},uid={uid},gid={uid}", sbx, data, *hidden, "--"]


def best_isolation() -> Isolation:
    """The strongest isolation that works here ("none" when nothing does)."""
    probe = probe_isolation()
    for name in ("bwrap", "unshare"):
        if probe[name][0]:
            return name  # type: ignore[return-value]
    return "none"


class ProcessSandbox(RefCounted):
    """One worker process tree; shared by a session and its forks."""

    backend = "process"

    def __init__(self, isolation: Isolation, limits: Limits, tools: list[str], seccomp: bool = True) -> None:
        self.isolation = isolation
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
        lib = os.path.join(self._tmp, "lib")
        os.mkdir(lib)  # a copy readable by the sandbox's uid wherever the package lives
        shutil.copytree(WORKER_DIR, os.path.join(lib, "worker"), ignore=shutil.ignore_patterns("__pycache__"))
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
            "seccomp_bpf": base64.b64encode(filter_bpf()).decode() if seccomp else None,
            "die_with_parent": True,
            "uid": self._uid.uid,
        }
        env = dict(SANDBOX_ENV)
        if isolation == "bwrap":
            py = _sandbox_python()
            cfg["scratch_root"] = f"{SANDBOX_DIR}/scratch"
            cfg["scratch"] = "/scratch"
            popen_user = _host_user(self._uid.uid)
            argv = [*_bwrap_argv(limits.scratch_mb, _extra_ro_paths(py), lib), py, "-E", "-s", "-B",
                    "-c", _boot_code(f"{SANDBOX_DIR}/lib"), json.dumps(cfg)]  # fmt: skip
        else:
            data = os.path.join(self._tmp, "data")
            os.mkdir(data, 0o700)  # private; under unshare a tmpfs of the sandbox's own covers it
            if os.geteuid() == 0:
                os.chown(data, self._uid.uid, self._uid.uid)
            os.symlink("/proc/self/fd/3", os.path.join(self._tmp, "scratch"))
            cfg["scratch_root"] = data
            cfg["scratch"] = os.path.join(self._tmp, "scratch")
            env.update(HOME=cfg["scratch"], TMPDIR=cfg["scratch"])
            argv = [_sandbox_python(), "-E", "-s", "-B", "-c", _boot_code(lib), json.dumps(cfg)]
            if isolation == "unshare":
                argv = [*_unshare_argv(self._tmp, data, limits.scratch_mb, self._uid.uid), *argv]
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
) -> Session:
    chosen: Isolation = best_isolation() if isolation == "auto" else isolation  # type: ignore[assignment]
    if chosen not in ("bwrap", "unshare", "none"):
        raise SandboxError(f"unknown isolation {isolation!r}; use auto, bwrap, unshare or none")
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
            "uid 65534 (or you) can read. Install bubblewrap. !!!"
        )
    box = ProcessSandbox(chosen, limits, sorted(tools))
    chan, hello = box.start()
    return Session(chan, box, limits=limits, tools=tools, info=hello)
