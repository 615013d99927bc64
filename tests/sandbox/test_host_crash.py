"""When the host process dies (SIGKILL, no cleanup code runs), the sandbox goes too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sandbox.backends import docker_skip_reason
from tests.sandbox.faults import process_tree

HOST = r"""
import sys, time
from tinyact.sandbox import open_session
kw = {"isolation": sys.argv[2], "allow_unsafe": True} if sys.argv[1] == "process" else {}
s = open_session(backend=sys.argv[1], **kw)
f = s.fork()  # a fork too: it must not outlive the host either
s.execute("x = 1")
box = s._sandbox
ident = box.container.id if sys.argv[1] == "docker" else str(box.proc.pid)
print(ident, flush=True)
time.sleep(600)
"""


def _wait_until(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def _start_host(backend: str, isolation: str = "auto") -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOST, backend, isolation], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    line = proc.stdout.readline().strip()
    assert line, "the host process did not start a session"
    return proc, line


def _sandbox_pids(launcher: int) -> set[int]:
    """The launcher and every process below it (bwrap, init, holders, executors)."""
    return set(process_tree(launcher))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("isolation", ["bwrap", "unshare", "none"])
def test_process_sandbox_dies_with_its_host(isolation):
    from tinyact.sandbox.process import probe_isolation

    if not probe_isolation()[isolation][0]:
        pytest.skip(f"{isolation} does not work here")
    proc, launcher = _start_host("process", isolation)
    # launcher, init, holder(s), standby executors: standbys are forked in the background, so
    # on a loaded machine the tree fills a moment after the first execute returns.
    assert _wait_until(lambda: len(_sandbox_pids(int(launcher))) >= 4, 15), _sandbox_pids(int(launcher))
    pids = _sandbox_pids(int(launcher))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _wait_until(lambda: not any(_alive(p) for p in pids), 10), [p for p in pids if _alive(p)]


@pytest.mark.docker
@pytest.mark.slow
def test_docker_container_is_removed_after_host_crash():
    reason = docker_skip_reason()
    if reason:
        pytest.skip(reason)
    import docker

    client = docker.from_env()
    proc, cid = _start_host("docker")
    assert client.containers.get(cid).status == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def gone() -> bool:
        try:
            client.containers.get(cid)
            return False
        except docker.errors.NotFound:
            return True

    assert _wait_until(gone, 20)
    client.close()


@pytest.mark.docker
@pytest.mark.slow
def test_docker_orphans_are_swept():
    reason = docker_skip_reason()
    if reason:
        pytest.skip(reason)
    import docker

    from tinyact.sandbox.docker import DEFAULT_IMAGE, LABEL, sweep_orphans

    client = docker.from_env()
    # A container left by a host process that no longer exists (pid 0x7fffffff never does).
    c = client.containers.run(
        DEFAULT_IMAGE, ["sleep", "infinity"], detach=True, init=True, network_mode="none",
        labels={LABEL: "1", "tinyact.owner_host": os.uname().nodename, "tinyact.owner_pid": "2147483647"},
    )  # fmt: skip
    try:
        assert sweep_orphans(client) >= 1
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(c.id)
    finally:
        try:
            c.remove(force=True)
        except docker.errors.NotFound:
            pass
        client.close()


def test_temp_dirs_of_dead_hosts_are_swept(tmp_path, monkeypatch):
    import tempfile

    from tinyact.sandbox import open_session
    from tinyact.sandbox.process import TMP_PREFIX

    # pytest's tmp_path is private to root (0700): the sandbox must cope and use /tmp
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with open_session() as s:
        assert s.execute("1 + 1").value == "2"
    if os.geteuid() == 0:
        tmp_path = Path(tempfile.mkdtemp(dir="/tmp"))
        tmp_path.chmod(0o755)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"{TMP_PREFIX}2147483647-abc"  # a pid that does not exist
    stale.mkdir()
    mine = tmp_path / f"{TMP_PREFIX}{os.getpid()}-keep"
    mine.mkdir()
    with open_session() as s:
        s.execute("1")
    assert not stale.exists() and mine.exists()
    assert not [p for p in tmp_path.iterdir() if p.name not in (mine.name,)]  # its own dir is gone too
    mine.rmdir()
    if str(tmp_path).startswith("/tmp/"):
        tmp_path.rmdir()
