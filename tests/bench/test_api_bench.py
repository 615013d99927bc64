"""bench/api.py --replicas: the same scripted load on SQLite x1, PostgreSQL x1 and x2, without errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.serve.conftest import pg_url, postgres  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[2]


def test_replicas_table_has_every_deployment_and_no_errors(pg_url: str):  # noqa: F811
    env = {**os.environ, "COLUMNS": "160"}
    out = subprocess.run([sys.executable, "-m", "tinyact.bench.api", "--replicas", "--clients", "2", "--requests", "6",
                          "--pg-url", pg_url, "--sandbox-pool", "1"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = [r.split("│")[1:-1] for r in out.stdout.splitlines() if re.match(r"^│\s+(sqlite|postgresql)", r)]
    cells = [[c.strip() for c in r] for r in rows]
    assert [(c[0], c[1]) for c in cells] == [("sqlite", "1"), ("postgresql", "1"), ("postgresql", "2")]
    assert all(c[4] == "0" and float(c[5]) > 0 for c in cells), cells  # no errors, some throughput


def test_fresh_and_reused_sandboxes_side_by_side_without_errors_or_leftovers():
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "tinyact.bench.api", "--clients", "1", "3", "--requests", "6",
                          "--sandbox-reuse", "off", "on", "--sandbox-pool", "1"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = [r.split("│")[1:-1] for r in out.stdout.splitlines() if re.match(r"^│\s+(fresh|reused)", r)]
    cells = [[c.strip() for c in r] for r in rows]
    assert [(c[0], c[1]) for c in cells] == [("fresh", "1"), ("reused", "1"), ("fresh", "3"), ("reused", "3")]
    assert all(c[3] == "0" and float(c[4]) > 0 and c[-1] == "0" for c in cells), cells  # no errors, nothing left
    reused = [c for c in cells if c[0] == "reused"]
    assert all(float(c[-2]) < 40 for c in reused), reused  # a reset, not a new sandbox, per run (CPU ms)
