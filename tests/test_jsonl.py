"""tinyact.jsonl: appends that survive a SIGKILL mid-line, atomic rewrites, tolerant reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tinyact import jsonl

# A writer that appends two whole records through JsonlWriter, then starts a third line the way a
# buffered write that is cut off leaves it (half the bytes on disk), says so, and waits to be killed.
_WRITER = textwrap.dedent("""
    import sys, time
    from tinyact.jsonl import JsonlWriter
    path = sys.argv[1]
    with JsonlWriter(path) as w:
        w.write({"id": "a", "text": "x" * 100})
        w.write({"id": "b", "text": "y" * 100})
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"id": "c", "text": "half a reco')
        f.flush()
        print("mid-line", flush=True)
        time.sleep(60)
""")


def _kill_mid_line(path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(jsonl.__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "mid-line"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def test_append_after_a_writer_is_killed_mid_line_cuts_the_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    _kill_mid_line(path)
    raw = path.read_bytes()
    assert not raw.endswith(b"\n") and raw.count(b"\n") == 2  # the torn third line is on disk

    jsonl.append(path, [{"id": "d"}])

    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "d"]  # every line parses: nothing glued
    assert path.read_bytes().endswith(b"\n")


def test_read_skips_the_torn_tail_and_repair_cuts_it(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    _kill_mid_line(path)
    assert [r["id"] for r in jsonl.iter_lines(path)] == ["a", "b"]
    size = path.stat().st_size
    assert [r["id"] for r in jsonl.iter_lines(path, repair=True)] == ["a", "b"]
    assert path.stat().st_size == size - len('{"id": "c", "text": "half a reco')
    assert jsonl.repair_tail(path) == 0  # already clean


def test_records_may_be_dicts_models_or_strings(tmp_path: Path) -> None:
    from tinyact.schema import SamplingParams

    path = tmp_path / "mixed.jsonl"
    with jsonl.JsonlWriter(path) as w:
        w.write({"id": "é"})
        w.write(SamplingParams(temperature=0.5))
        w.write('{"raw": true}')
    rows = list(jsonl.iter_lines(path))
    assert rows[0] == {"id": "é"} and rows[1]["temperature"] == 0.5 and rows[2] == {"raw": True}
    assert list(jsonl.iter_lines(tmp_path / "missing.jsonl")) == []


def test_rewrite_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "kept.jsonl"
    jsonl.append(path, [{"id": i} for i in range(3)])
    assert jsonl.rewrite(path, [{"id": 9}]) == 1
    assert [r["id"] for r in jsonl.iter_lines(path)] == [9]

    def broken():
        yield {"id": 10}
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        jsonl.rewrite(path, broken())
    assert [r["id"] for r in jsonl.iter_lines(path)] == [9]  # the old file stands whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl"]  # no temporary file left behind
