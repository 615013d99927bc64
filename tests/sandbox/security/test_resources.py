"""Resource exhaustion: each attack ends with a clear error in the ExecResult
within its limit, the host is unaffected, and the session keeps its variables."""

from __future__ import annotations

import os
import time

import pytest

from tinyact.sandbox import Limits
from tests.sandbox.backends import BACKENDS, open_backend

LIMITS = Limits(memory_mb=256, cpu_s=2, timeout_s=3, processes=48, scratch_mb=64, file_size_mb=16, output_bytes=4096)

# name -> (code, accepted error types or None for "no error", seconds allowed).
# Files go to the working directory: the scratch folder under every isolation.
ATTACKS = {
    "infinite loop": ("while True:\n    pass", {"TimeoutError", "CPUTimeLimitError", "KilledError"}, 6),
    "sleep forever": ("import time\ntime.sleep(10**9)", {"TimeoutError"}, 6),
    "memory bomb": (
        "def grab():\n    hog = []\n    while True:\n        hog.append(bytearray(10**7))\ngrab()",
        {"MemoryError", "KilledError", "TimeoutError"},  # a timeout only on a starved machine
        8,
    ),
    "huge allocation": ("x = bytearray(8 * 1024**3)", {"MemoryError"}, 6),
    "fork bomb": ("import os\nwhile True:\n    os.fork()", {"BlockingIOError", "TimeoutError"}, 8),
    "shell fork bomb": (
        "import subprocess\nsubprocess.run(['sh', '-c', 'b() { b | b & }; b'], timeout=2)",
        {None, "TimeoutExpired", "TimeoutError", "BlockingIOError"},
        8,
    ),
    "disk fill": (
        "chunk = b'x' * 2**20\ni = 0\nwhile True:\n    with open(f'fill{i}', 'wb') as f:\n"
        "        for _ in range(8):\n            f.write(chunk)\n    i += 1",
        {"OSError"},  # ENOSPC: the scratch file system is size-limited (a timeout would mean it is not)
        8,
    ),
    "one huge file": ("f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 2**20)", {"OSError"}, 8),
    "giant print": ("print('y' * 10**7)", {None}, 6),
    "endless print": ("while True:\n    print('z' * 1000)", {"TimeoutError", "CPUTimeLimitError", "KilledError"}, 6),
    "deep recursion": ("def f(n):\n    return f(n + 1)\nf(0)", {"RecursionError"}, 6),
    "unbounded recursion": (
        "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)",
        {"RecursionError", "CrashError", "MemoryError", "SystemError", "TimeoutError", "KilledError", "CPUTimeLimitError"},
        6,
    ),
    "os._exit": ("import os\nos._exit(3)", {"ProcessExit"}, 3),
    "sys.exit": ("import sys\nsys.exit(2)", {"SystemExit"}, 3),
    "background process": ("import subprocess\nsubprocess.Popen(['sleep', '1000'])\nkeep_going = True", {None}, 3),
}


@pytest.fixture(scope="module", params=BACKENDS)
def box(request):
    s = open_backend(request.param, limits=LIMITS)
    yield s
    s.close()


def _host_processes(uid: int | None = None) -> int:
    """Live processes on the host (of `uid` only, when given: exact on a shared machine).

    Zombies do not count: a closed fork stays one until its parent holder next reaps.
    """
    n = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if uid is not None and os.stat(f"/proc/{p}").st_uid != uid:
                continue
            with open(f"/proc/{p}/stat") as fh:
                n += fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            pass
    return n


def _sandbox_uid(session) -> int | None:
    uid = getattr(session._sandbox, "host_uid", None)
    return uid if os.geteuid() == 0 and uid not in (None, 0) else None


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_contained(box, attack):
    code, accepted, budget = ATTACKS[attack]
    uid = _sandbox_uid(box)
    before_procs = _host_processes(uid)
    s = box.fork()  # a fresh state per attack, made from the module's session
    try:
        s.execute("marker = 'still here'\nimport os")
        t = time.monotonic()
        r = s.execute(code)
        elapsed = time.monotonic() - t
        err = r.error.type if r.error else None
        assert err in accepted, f"{attack}: {r.error}"
        if r.error:
            assert r.error.message or r.error.type in {"MemoryError"}
        assert elapsed < budget, f"{attack} took {elapsed:.1f} s"
        if attack in ("giant print", "endless print"):
            assert r.truncated and "truncated at 4096 bytes" in r.stdout
        # the session still works and kept its variables
        after = s.execute("marker")
        assert after.ok and after.value == "'still here'", after
        # nothing the code started is left running
        if attack in ("background process", "shell fork bomb", "fork bomb"):
            left = s.execute(
                "import os\n[p for p in os.listdir('/proc') if p.isdigit() and "
                "open(f'/proc/{p}/cmdline','rb').read().startswith((b'sleep\\x001000', b'sh\\x00-c'))]"
            )
            assert left.value == "[]", left
    finally:
        s.close()
    # the host is unaffected: nothing the attack started outlives it (a closed fork takes a
    # moment to end: 0.5 s idle, longer on a loaded machine)
    room = 3 if uid is not None else 20
    end = time.monotonic() + 10
    while _host_processes(uid) >= before_procs + room and time.monotonic() < end:
        time.sleep(0.1)
    assert _host_processes(uid) < before_procs + room


def test_timeout_is_enforced_from_outside_even_with_signals_blocked(box):
    s = box.fork()
    try:
        s.execute("v = 1")
        t = time.monotonic()
        r = s.execute(
            "import signal, time\nfor sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):\n"
            "    signal.signal(sig, signal.SIG_IGN)\nv = 2\ntime.sleep(100)",
            timeout=1,
        )
        assert r.error.type == "TimeoutError" and time.monotonic() - t < 3
        assert s.execute("v").value == "1"
    finally:
        s.close()


@pytest.mark.parametrize("isolation", ["bwrap", "unshare", "docker"])
def test_scratch_size_is_enforced(isolation):
    """Limits.scratch_mb holds under every isolation that promises it (not "none")."""
    from tinyact.sandbox.process import probe_isolation

    if isolation != "docker" and not probe_isolation()[isolation][0]:
        pytest.skip(f"{isolation} does not work here")
    backend = "docker" if isolation == "docker" else "process"
    kw = {} if backend == "docker" else {"isolation": isolation}
    limits = Limits(scratch_mb=8, file_size_mb=64, timeout_s=10)
    with open_backend(backend, limits=limits, **kw) as s:
        r = s.execute(
            "import errno\nn = 0\ntry:\n    with open('fill', 'wb') as f:\n        while n < 64:\n            f.write(b'x' * 2**20)\n            f.flush()\n"
            "            n += 1\nexcept OSError as e:\n    print('stopped', n, errno.errorcode[e.errno])"
        )
        assert r.ok, r.error
        words = r.stdout.split()
        assert words[0] == "stopped" and words[2] == "ENOSPC" and int(words[1]) <= 8, r.stdout


def test_unshare_scratch_is_private_to_the_sandbox():
    """Under unshare the scratch files live on a tmpfs of the sandbox's own mount namespace:
    the host folder beneath it is private (0700) and stays empty."""
    from tinyact.sandbox import open_session
    from tinyact.sandbox.process import probe_isolation

    if not probe_isolation()["unshare"][0]:
        pytest.skip("unshare does not work here")
    with open_session(isolation="unshare", limits=LIMITS) as s:
        r = s.execute("open('secret.txt', 'w').write('mine')\nimport os\nos.path.realpath('.')")
        assert r.ok, r.error
        data = os.path.join(s._sandbox._tmp, "data")
        assert os.stat(data).st_mode & 0o777 == 0o700
        assert os.listdir(data) == []  # the host sees nothing of it
        assert eval(r.value).startswith(data)


def test_bwrap_dev_is_read_only_and_dev_shm_is_bounded():
    """bwrap's /dev is a tmpfs the sandbox user could fill without bound: it is read-only, and
    /dev/shm (shared memory, multiprocessing's semaphores) is a tmpfs of DEV_SHM_MB."""
    from tinyact.sandbox import open_session
    from tinyact.sandbox.isolation import DEV_SHM_MB
    from tinyact.sandbox.process import probe_isolation

    if not probe_isolation()["bwrap"][0]:
        pytest.skip("bwrap does not work here")
    limits = Limits(file_size_mb=DEV_SHM_MB, timeout_s=20)
    with open_session(isolation="bwrap", limits=limits) as s:
        r = s.execute(
            "import errno, multiprocessing\nlock = multiprocessing.Lock()\n"
            "def fill(path, mb):\n    n = 0\n    try:\n        with open(path, 'wb') as f:\n"
            "            while n < mb:\n                f.write(b'x' * 2**20)\n                f.flush()\n                n += 1\n"
            "    except OSError as e:\n        return errno.errorcode[e.errno], n\n    return 'ok', n\n"
            f"print((fill('/dev/big', 1), fill('/dev/shm/a', {DEV_SHM_MB // 2}), fill('/dev/shm/b', {DEV_SHM_MB})))"
        )
        assert r.ok, r.error
        dev, first, second = eval(r.stdout)  # noqa: S307 - our own print of tuples
        assert dev == ("EROFS", 0)
        assert first == ("ok", DEV_SHM_MB // 2)
        assert second[0] == "ENOSPC" and second[1] <= DEV_SHM_MB // 2, r.stdout
