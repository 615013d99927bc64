"""`tinyact sandbox doctor` and the sandbox benchmark, run for real."""

from __future__ import annotations

from typer.testing import CliRunner

from tinyact.cli import app


def test_doctor_reports_isolation_and_checks():
    r = CliRunner().invoke(app, ["sandbox", "doctor"])
    assert r.exit_code == 0, r.output
    assert "chosen isolation" in r.output and "bwrap" in r.output
    assert "seccomp: inet sockets denied" in r.output
    assert "FAIL" not in r.output


def test_bench_measures_the_sandbox(capsys):
    from tinyact.bench import sandbox as bench

    rows = bench.bench_backend("process", 20)
    names = [name for name, _ in rows]
    assert any("round trip" in n for n in names) and any("k=8" in n for n in names)
    assert all(len(samples) >= 20 for _, samples in rows)
    assert bench.bench_fresh_python(10)[1]
