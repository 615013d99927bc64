"""What sandboxed code can reach: files, network, environment, processes.

Each test plants something on the host and checks, by effect, that code in the
sandbox cannot see or touch it, including through the escapes that work on
in-process interpreters (str.format attribute walks, frame and traceback walks,
subprocess, os.system, ctypes).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from tinyact.sandbox import open_session
from tinyact.sandbox.process import probe_isolation

SECRET_VAR = "TINYACT_TEST_SECRET"


@pytest.fixture
def secret(monkeypatch) -> str:
    value = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv(SECRET_VAR, value)
    return value


@pytest.fixture
def planted(tmp_path) -> Path:
    path = tmp_path / "host-secret.txt"
    path.write_text("host file content")
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    return path


def test_host_files_outside_scratch_are_invisible(session, planted):
    here = Path(__file__).resolve()
    paths = [str(planted), str(here), str(here.parents[2]), os.path.expanduser("~/.bashrc")]
    if session.isolation == "bwrap":  # an empty root: not even the image's own /etc
        paths += ["/root/.bashrc", "/etc/passwd"]
    if session.isolation == "unshare":  # the host's files stay visible, but for people's folders
        from tinyact.sandbox.process import HIDDEN

        paths = [p for p in paths if any(p.startswith(h + "/") for h in HIDDEN)]
        assert str(planted) in paths
    r = session.execute(
        "import os\n"
        f"print([p for p in {paths!r} if os.path.exists(p)])\n"
        f"try:\n    open({str(planted)!r}).read()\nexcept OSError as e:\n    print('denied', type(e).__name__)"
    )
    assert r.ok, r.error
    assert r.stdout.splitlines()[0] == "[]"
    assert "denied" in r.stdout
    if session.isolation == "bwrap" and os.path.isdir("/etc/alternatives"):  # of /etc, its symlinks into /usr only
        assert session.execute("import os; print(os.listdir('/etc'))").stdout.strip() == "['alternatives']"


def test_scratch_is_writable_and_usr_is_read_only(session):
    r = session.execute(
        "import os\nd = '/scratch' if os.path.isdir('/scratch') else os.environ['HOME']  # unshare: no /scratch\n"
        "open(d + '/f', 'w').write('ok')\nprint(open(d + '/f').read(), os.getcwd() == os.path.realpath(d))\n"
        "for p in ('/usr/evil', '/evil'):\n"
        "    try:\n        open(p, 'w')\n        print('wrote', p)\n"
        "    except OSError as e:\n        print('refused', p)"
    )
    assert r.ok, r.error
    assert "ok True" in r.stdout and "wrote" not in r.stdout


def test_no_network(session):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    accepted = []
    srv.settimeout(3)
    t = threading.Thread(target=lambda: accepted.append(_accept(srv)))
    t.start()
    try:
        r = session.execute(
            "import socket\n"
            f"for host in ('127.0.0.1', '1.1.1.1'):\n"
            f"    try:\n        socket.create_connection((host, {port}), timeout=1)\n        print('connected', host)\n"
            "    except OSError as e:\n        print('failed', host, type(e).__name__)\n"
            "import subprocess\n"
            f"r = subprocess.run(['python3', '-c', 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=1)'],"
            " capture_output=True)\nprint('child rc', r.returncode)"
        )
    finally:
        t.join()
        srv.close()
    assert r.ok, r.error
    assert "connected" not in r.stdout
    assert r.stdout.count("failed") == 2 and "child rc 0" not in r.stdout
    assert accepted == [False]


def _accept(srv: socket.socket) -> bool:
    try:
        conn, _ = srv.accept()
        conn.close()
        return True
    except OSError:
        return False


ESCAPES = {
    "os.environ": "import os\nprint(dict(os.environ))",
    "proc environ": "import os\nfor p in os.listdir('/proc'):\n    try:\n        print(open(f'/proc/{p}/environ','rb').read())\n"
    "    except Exception:\n        pass",
    "str.format walk": "import logging\ndef f(): pass\nprint('{0.__globals__[__builtins__]}'.format(f)[:50])\n"
    "print('{0.__init__.__globals__[os].environ}'.format(logging.Logger))",
    "frame walk": "import sys\nf = sys._getframe()\nwhile f is not None:\n    print(f.f_globals.keys(), f.f_locals.keys())\n"
    "    for v in list(f.f_globals.values()):\n        print(repr(v)[:200])\n    f = f.f_back",
    "traceback walk": "try:\n    1/0\nexcept Exception as e:\n    tb = e.__traceback__\n    while tb:\n"
    "        fr = tb.tb_frame\n        while fr:\n            print(fr.f_globals.get('os') and fr.f_globals['os'].environ)\n"
    "            fr = fr.f_back\n        tb = tb.tb_next",
    "gc scan": "import gc\nprint([o for o in gc.get_objects() if isinstance(o, (str, bytes, dict)) and 'TEST_SECRET' in str(o)][:3])",
    "subprocess env": "import subprocess\nprint(subprocess.run(['sh', '-c', 'env; cat /proc/1/environ'], capture_output=True).stdout)",
    "ctypes getenv": "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.getenv.restype = ctypes.c_char_p\nprint(libc.getenv(b'TINYACT_TEST_SECRET'))",
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_host_environment_is_unreadable(backend, secret, escape):
    from tests.sandbox.backends import open_backend

    with open_backend(backend) as s:  # opened after the secret was planted
        r = s.execute(ESCAPES[escape])
    text = r.stdout + r.stderr + (r.error.message if r.error else "") + (r.value or "")
    assert secret not in text
    assert SECRET_VAR not in r.stdout.replace("'TEST_SECRET'", "")


def test_subprocess_os_system_and_ctypes_reach_nothing_outside(session, planted):
    r = session.execute(
        "import subprocess, os, ctypes\n"
        f"p = subprocess.run(['cat', {str(planted)!r}], capture_output=True, text=True)\n"
        "print('cat rc', p.returncode, p.stdout)\n"
        f"print('system rc', os.system('cat {planted} /root/.bashrc > /dev/null 2>&1'))\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('socket', libc.socket(2, 1, 0), ctypes.get_errno())\n"
        "print('ptrace', libc.ptrace(16, 1, 0, 0))\n"  # PTRACE_ATTACH to pid 1
        "print('unshare', libc.unshare(0x10000000))\n"  # CLONE_NEWUSER
        "print('mount', libc.mount(b'none', b'/scratch', b'tmpfs', 0, None))"
    )
    assert r.ok, r.error
    out = r.stdout
    assert "cat rc 0" not in out and "host file content" not in out
    assert "system rc 0" not in out
    assert "socket -1 1" in out  # EPERM from the seccomp filter
    assert "ptrace -1" in out and "unshare -1" in out and "mount -1" in out


def test_runs_as_unprivileged_user(session):
    from tests.sandbox.backends import expected_uid

    uid = expected_uid(session)
    assert uid != 0 and (os.geteuid() != 0 or uid != os.geteuid())
    r = session.execute("import os\nos.getuid(), os.geteuid(), os.getgroups()")
    assert r.value in (f"({uid}, {uid}, [])", f"({uid}, {uid}, [{uid}])"), r


def test_every_socket_family_but_unix_is_refused(session):
    """Default deny: the seccomp filter lets only AF_UNIX sockets open, whatever the family."""
    r = session.execute(
        "import socket, errno\nopened, refused, other = [], [], {}\n"
        "for family in range(0, 64):\n"
        "    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW, socket.SOCK_SEQPACKET):\n"
        "        try:\n            socket.socket(family, kind).close()\n            opened.append(family)\n"
        "        except OSError as e:\n"
        "            (refused.append(family) if e.errno == errno.EPERM else other.setdefault(family, e.errno))\n"
        "    try:\n        a, b = socket.socketpair(family, socket.SOCK_STREAM)\n        opened.append(('pair', family))\n"
        "    except OSError as e:\n        pass\n"
        "print(sorted(set(map(str, opened))))\nprint(sorted(set(refused)) == [0, *range(2, 64)], other)"
    )
    assert r.ok, r.error
    assert r.stdout.splitlines()[0] == str(sorted(["1", "('pair', 1)"]))  # AF_UNIX, and nothing else
    assert r.stdout.splitlines()[1].startswith("True"), r.stdout  # families 0, 2..63 all refused by seccomp (EPERM)


@pytest.mark.skipif(not probe_isolation()["unshare"][0], reason="unshare does not work here")
def test_unshare_isolation_blocks_network_and_environment(secret):
    with open_session(isolation="unshare") as s:
        assert s.isolation == "unshare"
        r = s.execute("import os, socket\nprint(dict(os.environ))\n"
                      "try:\n    socket.socket()\nexcept OSError as e:\n    print('no socket', e.errno)")
        assert r.ok, r.error
        assert secret not in r.stdout and "no socket 1" in r.stdout


def test_no_isolation_is_refused_unless_allowed(monkeypatch):
    from tinyact.errors import SandboxError, SandboxErrorCode

    with pytest.raises(SandboxError) as e:
        open_session(isolation="none")
    assert e.value.code == SandboxErrorCode.NO_ISOLATION
    with open_session(isolation="none", allow_unsafe=True) as s:
        uid = s._sandbox.host_uid if os.geteuid() == 0 else os.geteuid()  # a leased uid when root
        assert os.geteuid() != 0 or uid not in (0, 65534)
        assert s.execute("import os\nos.getuid()").value == str(uid)


@pytest.mark.skipif(not probe_isolation()["unshare"][0], reason="unshare does not work here")
def test_unshare_sees_the_host_read_only_and_peoples_folders_empty(planted):
    """Under unshare the host's file system is visible, but read-only, and /tmp, /home, /root... are empty."""
    import shutil
    import tempfile

    writable = Path(tempfile.mkdtemp(prefix="tinyact-rw-", dir="/var/lib" if os.geteuid() == 0 else None))
    writable.chmod(0o1777)  # world-writable on the host: only the mount can stop the sandbox
    try:
        with open_session(isolation="unshare") as s:
            r = s.execute(
                "import os\n"
                f"for p in ({str(writable / 'x')!r}, '/usr/x'):\n"
                "    try:\n        open(p, 'w').write('x')\n        print('wrote', p)\n"
                "    except OSError as e:\n        print('refused', p, e.strerror)\n"
                f"print(os.path.exists({str(planted)!r}), os.listdir('/tmp') == [os.getcwd().split('/')[2]])"
            )
        assert r.ok, r.error
        if str(writable).startswith("/var/lib"):
            assert f"refused {writable / 'x'} Read-only file system" in r.stdout, r.stdout
        assert "wrote" not in r.stdout and not (writable / "x").exists()
        assert r.stdout.splitlines()[-1] == "False True"  # the planted file is hidden; /tmp holds only the sandbox
    finally:
        shutil.rmtree(writable, ignore_errors=True)
