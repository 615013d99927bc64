"""Python packages sandboxed code may import beyond the standard library: numpy, sympy, mpmath.

The sandbox runs the system interpreter with ``-E -s`` (no site-packages of the host's
environment), which has the standard library only; the paper's agents compute with
``numpy`` and ``sympy``. ``install()`` puts them, built for that interpreter, in one
folder per host (``$TINYACT_HOME/sandbox-packages/cpXY``), which every sandbox sees
read-only on its ``sys.path`` (bwrap and unshare bind it in; ``none`` reads it where
it is). Without the folder sandboxes start as before, with the standard library only.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tinyact.errors import SandboxError

__all__ = ["SANDBOX_PACKAGES", "install", "installed", "packages_dir"]

SANDBOX_PACKAGES = ("numpy", "sympy", "mpmath")
_DONE = ".complete"


@functools.cache
def _interpreter_version() -> str:
    from tinyact.sandbox.isolation import _sandbox_python

    out = subprocess.run([_sandbox_python(), "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def packages_dir() -> Path:
    """Where the sandbox's packages live: ``$TINYACT_SANDBOX_PACKAGES``, else under ``$TINYACT_HOME``."""
    if os.environ.get("TINYACT_SANDBOX_PACKAGES"):
        return Path(os.environ["TINYACT_SANDBOX_PACKAGES"])
    home = Path(os.environ.get("TINYACT_HOME") or Path.home() / ".cache" / "tinyact")
    return home / "sandbox-packages" / f"cp{_interpreter_version().replace('.', '')}"


def installed() -> str | None:
    """The package folder when it is complete and this user can read it, else None."""
    try:
        path = packages_dir()
    except (OSError, subprocess.SubprocessError):
        return None
    if (path / _DONE).is_file() and os.access(path, os.R_OK | os.X_OK):
        return str(path)
    return None


def install(packages: tuple[str, ...] = SANDBOX_PACKAGES, *, force: bool = False) -> Path:
    """pip-install ``packages`` (wheels for the sandbox's interpreter) into ``packages_dir()``.

    Written to a temporary folder and renamed into place when complete, readable by
    every uid (sandboxes run as their own users). A complete folder is kept unless ``force``.

    Raises:
        SandboxError: pip failed (its last line in the message).
    """
    dest = packages_dir()
    if (dest / _DONE).is_file() and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=dest.parent))
    try:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
               "--target", str(tmp), "--python-version", _interpreter_version(), "--only-binary=:all:",
               "--implementation", "cp", *packages]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise SandboxError(f"could not install the sandbox's packages ({', '.join(packages)}): {last}")
        shutil.rmtree(tmp / "bin", ignore_errors=True)
        for root, dirs, files in os.walk(tmp):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644 | (os.stat(os.path.join(root, name)).st_mode & 0o111))
        (tmp / _DONE).write_text(" ".join(packages) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
