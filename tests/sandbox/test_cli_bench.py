"""`tinyact sandbox doctor` and the sandbox benchmark, run for real."""

from __future__ import annotations

from typer.testing import CliRunner

from tinyact.cli import app


def _rows(output: str) -> dict[str, str]:
    """check name -> result, from the doctor's table (rows may wrap: first line only)."""
    out = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) >= 2 and cells[0] and cells[1] in ("ok", "FAIL"):
            out[cells[0]] = cells[1]
    return out


def test_doctor_reports_isolation_and_checks():
    import os

    r = CliRunner().invoke(app, ["sandbox", "doctor"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "chosen isolation" in r.output and "bwrap" in r.output
    rows = _rows(r.output)
    assert rows["seccomp: sockets of AF_UNIX only"] == "ok" and rows["scratch size limited"] == "ok"
    assert rows["host files hidden"] == "ok"
    from tinyact.sandbox.packages import installed

    assert rows["packages: numpy, sympy, mpmath"] == ("ok" if installed() else "FAIL")
    if installed():  # and says where from: the folder (the host's python3 has no numpy of its own here)
        assert f"from the packages folder /.tinyact/packages (host: {installed()})" in r.output
    # the process budget is a sandbox's own only where a uid of its own can be had (root)
    assert rows["process budget per sandbox"] == ("ok" if os.geteuid() == 0 else "FAIL")


def test_doctor_says_what_unshare_does_not_hide():
    from tinyact.sandbox.process import probe_isolation

    if not probe_isolation()["unshare"][0]:
        import pytest

        pytest.skip("unshare does not work here")
    r = CliRunner().invoke(app, ["sandbox", "doctor", "--isolation", "unshare"], terminal_width=200)
    assert r.exit_code == 0, r.output
    rows = _rows(r.output)
    assert rows["host files hidden"] == "FAIL" and "/etc/passwd" in r.output  # the truth: the host is visible
    assert rows["seccomp: sockets of AF_UNIX only"] == "ok" and rows["scratch size limited"] == "ok"


def test_bench_measures_the_sandbox(capsys):
    from tinyact.bench import sandbox as bench

    rows = bench.bench_backend("process", 20)
    names = [name for name, _ in rows]
    assert any("round trip" in n for n in names) and any("k=8" in n for n in names)
    assert all(len(samples) >= 20 for _, samples in rows)
    assert bench.bench_fresh_python(10)[1]


def test_image_build_refuses_before_debootstrap_when_it_cannot_finish():
    """`tinyact sandbox image` checks root and the engine first: minutes of debootstrap, then no engine to
    import into, would be the worst way to learn it. One line, exit 1, nothing built."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DOCKER_HOST": "tcp://127.0.0.1:1"}
    r = subprocess.run([sys.executable, "-m", "tinyact.cli", "sandbox", "image", "tinyact-test-never:built"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    want = "no Docker engine reachable (DOCKER_HOST=tcp://127.0.0.1:1)" if os.geteuid() == 0 else "needs root"
    assert want in lines[0]
    assert ">> debootstrap" not in r.stdout
