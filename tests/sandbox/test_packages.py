"""numpy, sympy and mpmath in the sandbox (`tinyact sandbox packages`): importable under every process
isolation, read-only, and absent (standard library only) when the folder is not installed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tinyact.errors import SandboxError
from tinyact.sandbox import Limits, open_session
from tinyact.sandbox.process import probe_isolation

CODE = """
import numpy, sympy, mpmath
x = sympy.symbols('x')
print(sympy.solve(x**2 - 2*x - 3, x), int(numpy.arange(5).sum()), int(mpmath.mpf(2) ** 64))
"""
LIMITS = Limits(memory_mb=1024, cpu_s=20, timeout_s=30, processes=48, scratch_mb=64)


@pytest.fixture(scope="module")
def packages() -> str:
    from tinyact.sandbox.packages import install

    try:
        return str(install())
    except SandboxError as e:  # no package index reachable and nothing cached
        pytest.skip(str(e))


def _isolation(name: str) -> str:
    if name != "none" and not probe_isolation()[name][0]:
        pytest.skip(f"{name} does not work here: {probe_isolation()[name][1]}")
    return name


@pytest.mark.parametrize("isolation", ["bwrap", "unshare", "none"])
def test_code_imports_numpy_and_sympy(packages, isolation):
    with open_session(isolation=_isolation(isolation), allow_unsafe=True, limits=LIMITS) as s:  # type: ignore[arg-type]
        r = s.execute(CODE)
        assert r.error is None, r.error
        assert r.stdout.strip() == "[-1, 3] 10 18446744073709551616"
        if isolation == "none":  # isolates nothing: the code may write wherever its user may
            return
        # the folder is read-only inside, whatever its host permissions
        r = s.execute("import sympy, os\nopen(os.path.join(os.path.dirname(sympy.__file__), 'x'), 'w')")
        assert r.error is not None and r.error.type in ("OSError", "PermissionError"), r.error


def test_without_the_folder_the_standard_library_only(packages, tmp_path):
    # a host process links the folder into its sandbox lib once: a fresh one, told the folder is elsewhere
    script = (
        "from tinyact.sandbox import Limits, open_session\n"
        "with open_session(limits=Limits(memory_mb=512, timeout_s=20)) as s:\n"
        "    print(s.execute('import sympy').error.type)\n"
        "    print(s.execute('import fractions; print(fractions.Fraction(1, 3) * 3)').stdout.strip())\n"
    )
    env = {**os.environ, "TINYACT_SANDBOX_PACKAGES": str(tmp_path / "absent")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["ModuleNotFoundError", "1"], out.stderr[-2000:]


def test_cli_installs_once_and_says_where(packages):
    from typer.testing import CliRunner

    from tinyact.cli import app

    r = CliRunner().invoke(app, ["sandbox", "packages"])
    assert r.exit_code == 0 and r.stdout.strip() == f"numpy, sympy, mpmath: {packages}"


def test_a_failed_install_leaves_nothing_that_looks_installed(tmp_path, monkeypatch):
    from tinyact.sandbox.packages import install, installed

    monkeypatch.setenv("TINYACT_SANDBOX_PACKAGES", str(tmp_path / "pkgs"))
    with pytest.raises(SandboxError, match="could not install the sandbox's packages"):
        install(("tinyact-no-such-package-4f9c",))
    assert installed() is None and list(tmp_path.iterdir()) == []
