"""The README's agent API examples, run as written against a real ``tinyact serve``.

The bash block runs verbatim in bash (only the port is swapped for a free one),
which starts the server in the background on the real qwen2.5-coder-0.5b and
curls a run; then the Python block runs verbatim (same port) in a fresh
interpreter with the real ``openai`` client: two chat turns, ``model="tinyact"``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def readme_blocks(section: str) -> dict[str, str]:
    """The first bash and python blocks of a README section."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"### {section}\n")
    end = text.find("\n## ", start)
    blocks: dict[str, str] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", text[start:end], re.S):
        blocks.setdefault(lang, body)
    return blocks


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_api_examples_run_as_written(tmp_path: Path):
    from tinyact.models.catalog import model_path, tinyact_home

    model_path("qwen2.5-coder-0.5b")  # prepared in the real cache
    home = tmp_path / "home"  # a fresh database, the cached models
    home.mkdir()
    (home / "models").symlink_to(tinyact_home() / "models")
    blocks = readme_blocks("Agent API server")
    assert "tinyact serve" in blocks["bash"] and 'model="tinyact"' in blocks["python"]
    port = str(free_port())
    env = {**os.environ, "TINYACT_HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("TINYACT_API_KEYS", None)
    script = blocks["bash"].replace("8080", port) + '\necho\necho "SERVER_PID=$!"\n'
    out, log = tmp_path / "bash.out", tmp_path / "server.log"
    with open(out, "w") as o, open(log, "w") as e:  # files, not pipes: the server outlives bash
        done = subprocess.run(["bash", "-e", "-c", script], stdout=o, stderr=e, env=env, timeout=600)
    lines = out.read_text().splitlines()
    pid = int(next(line for line in lines if line.startswith("SERVER_PID=")).split("=")[1])
    try:
        assert done.returncode == 0, log.read_text()[-3000:]
        run = json.loads(next(line for line in lines if line.startswith("{")))  # curl: the finished run
        assert run["status"] == "finished" and run["steps"], run
        assert run["model"] == "qwen2.5-coder-0.5b"

        code = blocks["python"].replace("8080", port)
        py = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1200)
        assert py.returncode == 0, py.stderr[-3000:]
        printed = py.stdout.splitlines()
        assert len(printed) == 2 and all(p.strip() for p in printed), py.stdout
    finally:
        import psutil

        try:  # bash started it in the background: not our child, so psutil waits for it
            server = psutil.Process(pid)
            server.terminate()
            server.wait(30)
        except psutil.TimeoutExpired:
            server.kill()
        except psutil.NoSuchProcess:
            pass
