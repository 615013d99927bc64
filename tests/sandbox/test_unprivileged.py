"""The sandbox and security suites, again as an unprivileged user, for bwrap and unshare.

CI runs as root, where every backend has privileges to spare; people run tinyact
as themselves (and the API image runs as uid 10001). When this suite runs as
root it creates a system user (``useradd``, once), copies the package to a
folder that user can read, and runs the sandbox suites there as that user
(``runuser``), with the isolation pinned by TINYACT_TEST_ISOLATION. Run as
anyone else, the suites already are unprivileged and this test skips.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from tinyact.sandbox.process import probe_isolation

USER = "tinyact-nobody"
REPO = Path(__file__).resolve().parents[2]
SUITES = [
    "tests/sandbox/test_session.py", "tests/sandbox/test_protocol.py", "tests/sandbox/test_faults.py",
    "tests/sandbox/test_tenants.py", "tests/sandbox/security", "tests/sandbox/test_packages.py",
]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="already unprivileged: the suites ran as this user"),
    pytest.mark.skipif(not shutil.which("runuser"), reason="runuser (util-linux) not found"),
]


def _ensure_user() -> None:
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode == 0:
        return
    if not shutil.which("useradd"):
        pytest.skip("no useradd to create an unprivileged user")
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)


def _as_user(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", USER, "--", *argv], capture_output=True, text=True, **kw)


def _interpreter() -> tuple[str, list[str]]:
    """A python the user may run, and the extra import paths it needs (this environment's packages)."""
    if _as_user([sys.executable, "-c", "pass"]).returncode == 0:
        return sys.executable, []
    # The environment's interpreter lives where the user cannot go (e.g. under /root):
    # the system python of the same version reads the environment's packages instead.
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    paths = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]} if os.path.isdir(p)]
    for cand in (f"/usr/bin/python{version}", "/usr/bin/python3"):
        probe = _as_user([cand, "-c", f"import sys; assert sys.version.startswith('{version}')"])
        if os.path.exists(cand) and probe.returncode == 0:
            return cand, paths
    pytest.skip(f"no python {version} the user {USER} may run")


@pytest.fixture(scope="module")
def checkout():
    """A copy of the package the unprivileged user can read (the checkout may be under /root)."""
    _ensure_user()
    root = Path(tempfile.mkdtemp(prefix="tinyact-unprivileged-"))
    dest = root / "tinyact"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", "*.egg-info"))
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield dest
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def packages():
    """The sandbox's packages as a folder the user can read (root's own sits under /root): hard links."""
    from tinyact.sandbox.packages import install

    src = install()
    root = Path(tempfile.mkdtemp(prefix="tinyact-unprivileged-pkgs-"))
    root.chmod(0o755)

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, root / "pkgs", copy_function=link)
    for path in [root / "pkgs", *(root / "pkgs").rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    yield root / "pkgs"
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("isolation", ["bwrap", "unshare"])
def test_sandbox_suites_pass_as_an_unprivileged_user(checkout, packages, isolation):
    if not probe_isolation()[isolation][0]:
        pytest.skip(f"{isolation} does not work here (even for root)")
    python, paths = _interpreter()
    home = tempfile.mkdtemp(prefix="tinyact-home-")
    shutil.chown(home, USER)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "TMPDIR": "/tmp",
        "PYTHONPATH": os.pathsep.join([str(checkout.parent), *paths]),
        "TINYACT_TEST_ISOLATION": isolation,
        "TINYACT_SANDBOX_PACKAGES": str(packages),
    }
    try:
        p = _as_user(
            [python, "-m", "pytest", *SUITES, "-q", "-x", "-p", "no:cacheprovider", "-m", "not docker",
             "-k", "not docker and not unprivileged"],
            cwd=checkout, env=env, timeout=900,
        )  # fmt: skip
    finally:
        shutil.rmtree(home, ignore_errors=True)
    tail = (p.stdout + p.stderr)[-3000:]
    assert p.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail
    # The suites really ran unprivileged, with the isolation asked for.
    check = _as_user([python, "-c", "import os; print(os.geteuid())"], env=env, cwd=checkout)
    assert check.stdout.strip() != "0"
