"""Sandboxes of different runs (tenants) do not share a budget or files.

A fork bomb in one sandbox must not starve another: each sandbox has a process
budget of its own (a uid of its own when the host is root, see
tinyact.sandbox.uids). And no session reads or writes another sandbox's scratch.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from tinyact.sandbox import Limits, open_session
from tinyact.sandbox.process import probe_isolation

LIMITS = Limits(memory_mb=256, cpu_s=5, timeout_s=8, processes=48, scratch_mb=64)


def _isolations() -> list:
    out: list = [name for name in ("bwrap", "unshare") if probe_isolation()[name][0]]
    if os.geteuid() == 0:
        out.append("none")  # its tenants differ by uid only, which needs root
    return [*out, pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])]


def _open(isolation: str):
    if isolation == "docker":
        from tests.sandbox.backends import open_backend

        return open_backend("docker", limits=LIMITS)
    return open_session(isolation=isolation, limits=LIMITS, allow_unsafe=True)


@pytest.mark.parametrize("isolation", _isolations())
def test_fork_bomb_in_one_sandbox_does_not_starve_another(isolation):
    if os.geteuid() != 0 and isolation != "docker":
        pytest.skip("without root the sandboxes of one user share its process budget (tinyact sandbox doctor says so)")
    with _open(isolation) as bomber, _open(isolation) as other:
        if os.geteuid() == 0 or isolation == "docker":
            uid = "uid" if isolation == "docker" else "host_uid"
            assert getattr(bomber._sandbox, uid) != getattr(other._sandbox, uid)  # budgets of their own
        other.execute("base = 40")
        started = threading.Event()
        out: dict = {}

        def bomb() -> None:
            started.set()
            out["bomb"] = bomber.execute("import os\nwhile True:\n    os.fork()", timeout=6)

        t = threading.Thread(target=bomb)
        t.start()
        started.wait()
        time.sleep(1.0)  # the bomb has filled its budget by now
        forks = other.fork_many(8)
        try:
            results = [fork.execute(f"import os\nos.getpid() and base + {i}", timeout=5) for i, fork in enumerate(forks)]
        finally:
            for f in forks:
                f.close()
        t.join()
        assert [r.value for r in results] == [str(40 + i) for i in range(8)], results
        assert out["bomb"].error is not None  # the bomb itself was contained
        assert out["bomb"].error.type in {"BlockingIOError", "TimeoutError"}, out["bomb"].error
        assert bomber.execute("1 + 1").value == "2"


@pytest.mark.parametrize("isolation", _isolations())
def test_no_session_reads_or_writes_another_sandboxes_scratch(isolation):
    with _open(isolation) as a, _open(isolation) as b:
        where = a.execute(
            "import os\nopen('secret.txt', 'w').write('tenant-a')\n"
            "d = os.path.realpath('/proc/self/fd/3')\nd"
        )
        assert where.ok, where.error
        a_dir = eval(where.value)
        # b tries the path a sees, and (process backend) a's host-side folder
        paths = [a_dir]
        if getattr(a._sandbox, "_tmp", None):
            paths.append(os.path.join(a._sandbox._tmp, "data", "main"))
        r = b.execute(
            "import os\nfound = []\n"
            f"for d in {paths!r}:\n"
            "    try:\n        found.append(open(os.path.join(d, 'secret.txt')).read())\n    except OSError:\n        pass\n"
            "    try:\n        open(os.path.join(d, 'planted.txt'), 'w').write('tenant-b')\n        found.append('wrote ' + d)\n"
            "    except OSError:\n        pass\nfound"
        )
        assert r.ok, r.error
        assert "tenant-a" not in r.value
        # what b may have written (into a folder of its own that happens to have the same
        # path inside its namespace) is not in a's scratch
        assert a.execute("import os\nsorted(os.listdir('/proc/self/fd/3'))").value == "['secret.txt']"
