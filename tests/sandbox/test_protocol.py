"""The channel the host does not trust: bounded frames, anything malformed is a dead
sandbox (never another exception), and the worker package is standard library only."""

from __future__ import annotations

import ast
import struct
import sys
from pathlib import Path

import pytest

from tinyact.errors import SandboxError, SandboxErrorCode
from tinyact.sandbox.worker import MODULES, protocol
from tinyact.sandbox.worker.protocol import MAX_DEPTH, ProtocolError, decode, encode, pop_frame

WORKER_DIR = Path(protocol.__file__).resolve().parent

# Code that writes `payload` (bytes) on its session's channel, the socket it inherited.
SEND_RAW = (
    "import os, stat\n"
    "chan = [fd for fd in range(4, 256) if _isock(fd)][0]\n"
    "os.write(chan, PAYLOAD)\n"
    "import time\ntime.sleep(1)\n"
)
ISOCK = (
    "def _isock(fd):\n    import os, stat\n    try:\n        return stat.S_ISSOCK(os.fstat(fd).st_mode)\n"
    "    except OSError:\n        return False\n"
)


def test_frames_round_trip_and_bounds():
    buf = bytearray(encode({"op": "x", "v": [1, {"a": None}]}) + encode({"op": "y"}))
    assert pop_frame(buf) == {"op": "x", "v": [1, {"a": None}]}
    assert pop_frame(buf) == {"op": "y"} and pop_frame(buf) is None
    with pytest.raises(ProtocolError, match="exceeds"):
        pop_frame(bytearray(struct.pack(">I", protocol.MAX_FRAME + 1)))
    with pytest.raises(ProtocolError, match="deeper"):
        decode(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")  # RecursionError inside json
    with pytest.raises(ProtocolError, match="deeper"):
        decode(b'{"a":' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}")
    assert decode(b'{"a":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}")
    for bad in (b"[1]", b"nope", b"\xff\xfe", b'"s"'):
        with pytest.raises(ProtocolError):
            decode(bad)


@pytest.mark.parametrize(
    "payload",
    [
        "b'garbage' * 1000",
        "struct.pack('>I', 2**31) + b'x'",
        "(lambda d: struct.pack('>I', len(d)) + d)(b'[' * 200000 + b']' * 200000)",
        "(lambda d: struct.pack('>I', len(d)) + d)(b'[1, 2]')",
    ],
    ids=["garbage", "huge length", "deep json", "not an object"],
)
def test_channel_garbage_is_a_dead_sandbox(session, payload):
    session.execute("keep = 1")
    code = ISOCK + "import struct\nPAYLOAD = " + payload + "\n" + SEND_RAW
    with pytest.raises(SandboxError) as e:
        session.execute(code, timeout=3)
    assert e.value.code == SandboxErrorCode.WORKER_DIED
    assert session.closed


def test_deep_values_from_the_code_do_not_kill_the_session(session):
    r = session.execute("a = []\nb = a\nfor _ in range(300):\n    b.append([])\n    b = b[-1]\nfinal_answer(a)")
    assert r.called_final_answer and isinstance(r.final_answer, str) and r.final_answer.startswith("[[[[")
    assert session.execute("1 + 1").value == "2"


def test_no_host_file_is_open_in_the_executor(session):
    r = session.execute(
        "import os\nfds = {}\nfor fd in os.listdir('/proc/self/fd'):\n    try:\n"
        "        fds[int(fd)] = os.readlink(f'/proc/self/fd/{fd}')\n    except OSError:\n        pass\nfds"
    )
    assert r.ok, r.error
    fds = eval(r.value)
    assert not [t for t in fds.values() if "worker.log" in t or "tinyact-sandbox" in t and "data" not in t], fds
    kinds = sorted(t.split(":")[0] if ":" in t else "path" for t in fds.values())
    # stdin (/dev/null), stdout/stderr (memfds), scratch dir, the listing itself, the channel, the holder's pipe
    assert len(fds) <= 7, fds
    assert kinds.count("socket") == 1 and kinds.count("pipe") == 1, fds


def test_the_worker_package_is_standard_library_only():
    for name in MODULES:
        tree = ast.parse((WORKER_DIR / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module or ""]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", f"{name}.py imports {mod}"
