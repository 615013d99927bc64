"""How each isolation mechanism of the process backend is invoked, and which work here.

- ``bwrap``: ``--unshare-all`` (user, pid, net, ipc, uts, cgroup, mount), an
  empty root holding only read-only /usr (and the /bin, /lib symlinks), /proc,
  a minimal /dev and a size-limited tmpfs for scratch files; uid/gid 65534,
  our init as PID 1 (``--as-pid-1``), ``--die-with-parent``, ``--new-session``,
  cleared environment.
- ``unshare``: net, pid, mount, ipc and uts namespaces (plus user namespaces
  when not root: one mapped to root that mounts, one mapping 65534 to the
  user that runs the worker). The file system stays visible but read-only,
  except the folders where people's files live (``HIDDEN``: /tmp, /home,
  /root, ...), which the sandbox sees empty. Scratch files live on a
  size-limited tmpfs over a private host temp dir, visible in the sandbox's
  mount namespace only: the one writable place.
- ``none``: a plain child process.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from tinyact.sandbox.uids import NOBODY

__all__ = ["HIDDEN", "Isolation", "best_isolation", "probe_isolation"]

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
    # numpy's BLAS starts a thread per core by default: past the process budget on a big host,
    # and a sandbox gets one CPU's worth of time anyway
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
TMP_PREFIX = "tinyact-sandbox-"  # + owner pid + "-" + random: host-side files of one sandbox


def _tmp_root() -> str:
    """Where host-side sandbox files go: the temp dir, if other uids (the sandbox's) can reach it."""
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


def _sandbox_python() -> str:
    """The interpreter inside bwrap: the system one under /usr (always mounted)."""
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(cand) and os.path.realpath(cand).startswith("/usr/"):
            return cand
    return os.path.realpath(sys.executable)


def _boot_code(lib: str, packages: str | None = None) -> str:
    """`python3 -c` code that starts the worker package found in `lib` (`packages`: a folder of importable
    packages for the sandboxed code, see ``packages.py``)."""
    extra = f"; sys.path.append({packages!r})" if packages else ""
    return f"import sys; sys.path.insert(0, {lib!r}){extra}; from worker.boot import main; main()"


def _host_user(uid: int = NOBODY) -> dict[str, Any]:
    """Popen arguments that start the launcher as `uid` when we are root.

    Run as root, bwrap maps the sandbox user onto host root, and the kernel
    never applies RLIMIT_NPROC to root: a fork bomb would go unchecked. As
    another user, bwrap builds an unprivileged user namespace and the limit holds.
    Prefer ``_as_user`` (same effect, but the launch stays a vfork).
    """
    if os.geteuid() != 0:
        return {}
    return {"user": uid, "group": uid, "extra_groups": []}


def _as_user(uid: int = NOBODY) -> tuple[list[str], dict[str, Any]]:
    """(argv prefix, Popen arguments) that start the launcher as `uid` when we are root.

    ``setpriv`` (util-linux, like ``unshare``) switches the uid in the child
    after exec: Popen's own ``user=``/``group=`` make CPython fork() the whole
    host process (page tables copied while it holds the GIL, milliseconds in
    a server) instead of vfork(). Without setpriv, Popen's arguments.
    """
    if os.geteuid() != 0:
        return [], {}
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return [], _host_user(uid)
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"], {}


DEV_SHM_MB = 64
"""Size of a bwrap sandbox's /dev/shm."""


def _bwrap_argv(scratch_mb: int, extra_ro: list[str], lib: str | None = None, packages: str | None = None) -> list[str]:
    """bwrap's arguments (`packages`: a folder of packages, bound read-only on SANDBOX_DIR/packages)."""
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
        # symlinks into /usr only, but Debian resolves libraries through them (numpy's libblas.so.3)
        "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
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
    if packages:
        argv += ["--ro-bind", packages, f"{SANDBOX_DIR}/packages"]
    for key, value in {**SANDBOX_ENV, "HOME": "/scratch", "TMPDIR": "/scratch"}.items():
        argv += ["--setenv", key, value]
    # /dev is bwrap's own tmpfs, writable by the sandbox user and unbounded: read-only, with a
    # bounded tmpfs for /dev/shm (POSIX shared memory, multiprocessing's semaphores)
    argv += ["--perms", "1777", "--size", str(DEV_SHM_MB * 1024 * 1024), "--tmpfs", "/dev/shm",
             "--remount-ro", "/dev"]  # fmt: skip
    argv += ["--remount-ro", "/", "--chdir", "/"]  # only the scratch and /dev/shm tmpfs stay writable
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
        prefix, popen_user = _as_user()
        r = _run([*prefix, *argv, py, "-c", "print(1)"], **popen_user)
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
# make every mount read-only (in this mount namespace only), mount the size-limited
# scratch tmpfs (the one writable place), then exec the command.
# Arguments: scratch mount options, the sandbox folder, its scratch root, the folders to hide, "--", argv.
_SETUP_MOUNTS = """set -e
opts=$1 sbx=$2 data=$3 pkgs=$4
shift 4
exec 9<"$sbx"
if [ -n "$pkgs" ]; then exec 8<"$pkgs"; fi
while [ "$1" != "--" ]; do mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev tinyact-hidden "$1"; shift; done
shift
mkdir -p "$sbx"
mount --no-canonicalize --rbind /proc/self/fd/9 "$sbx"
exec 9<&-
if [ -n "$pkgs" ]; then mount --no-canonicalize --rbind /proc/self/fd/8 "$sbx/packages"; exec 8<&-; fi
while read -r _ _ _ _ mp _; do
  case "$mp" in *\\*|/proc|/proc/*) continue;; esac  # /proc: the uid_map is written after this
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done < /proc/self/mountinfo
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


def _unshare_argv(sbx: str, data: str, scratch_mb: int, uid: int, packages: str | None = None) -> list[str]:
    """unshare, then the mounts of _SETUP_MOUNTS (`sbx`: the sandbox's host folder, `data`: its scratch root,
    `packages`: a folder bound read-only on `sbx/packages`, which must exist).

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
        return [*argv, "/bin/sh", "-c", _SETUP_MOUNTS, "sh", opts, sbx, data, packages or "", *hidden, "--",
                unshare, "--map-user=65534", "--map-group=65534"]  # fmt: skip
    return [*argv, "/bin/sh", "-c", _SETUP_MOUNTS, "sh", f"{opts},uid={uid},gid={uid}", sbx, data, packages or "",
            *hidden, "--"]


def best_isolation() -> Isolation:
    """The strongest isolation that works here ("none" when nothing does)."""
    probe = probe_isolation()
    for name in ("bwrap", "unshare"):
        if probe[name][0]:
            return name  # type: ignore[return-value]
    return "none"
