"""Docker backend: the same worker, inside a locked-down container.

One container per sandbox (a session and its forks):

- ``docker run --init --network none --read-only --cap-drop ALL
  --security-opt no-new-privileges --user UID:UID --memory/--pids-limit/
  --cpus --tmpfs /.tinyact:size=...,uid=UID,gid=UID,mode=0700``, labelled
  ``tinyact.sandbox``; PID 1 is docker's init running ``sleep infinity``.
- The worker is started once with ``docker exec`` and stays attached: its
  stdin/stdout is the one channel for every session in the container (frames
  tagged with a session id, see ``worker/mux.py``), so a round trip costs
  about what it costs in the process backend, not the 80-170 ms of an
  ``exec_run`` per step. The worker's source travels over that stream too, so
  the image needs nothing but python3 (``build_image.sh`` adds Debian's numpy
  and sympy for the code: its interpreter's own dist-packages).
- Images built by ``build_image.sh`` carry its hash (label ``tinyact.sandbox.recipe``);
  one built by another recipe, or one that says it is no sandbox image (the API
  image), is refused with what to do (``image_problem``).
- UID is a uid of this sandbox's own (``uids.py``), so the process limit
  (RLIMIT_NPROC, per host uid) is not shared with other containers.
- Timeouts are enforced inside the container by the holder processes, as in
  the process backend; the memory and process limits also hold as cgroup limits.
- Cleanup: sandbox close removes the container; if the host process dies, the
  stream closes, the worker kills every process of its user and the container
  exits (``auto_remove``); and each new sandbox removes containers whose
  owning process is gone (labels ``tinyact.owner_host`` / ``tinyact.owner_pid``).

The ``docker`` SDK is imported here only (``pip install tinyact[docker]``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
import queue
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from tinyact.errors import SandboxError, SandboxErrorCode
from tinyact.sandbox.limits import Limits
from tinyact.sandbox.seccomp import filter_bpf
from tinyact.sandbox.session import RefCounted, Session
from tinyact.sandbox.uids import lease_uid
from tinyact.sandbox.worker import MODULES
from tinyact.sandbox.worker.protocol import MAX_FRAME, Channel, ProtocolError, decode

__all__ = ["DEFAULT_IMAGE", "DockerSandbox", "docker_available", "engine_client", "image_problem", "image_recipe",
           "start_docker_session", "sweep_orphans"]

log = logging.getLogger(__name__)

DEFAULT_IMAGE = os.environ.get("TINYACT_SANDBOX_IMAGE", "tinyact-sandbox:latest")
LABEL = "tinyact.sandbox"
IMAGE_LABEL = "tinyact.sandbox.image"  # "1": built by build_image.sh; "": not a sandbox image (the API image)
RECIPE_LABEL = "tinyact.sandbox.recipe"  # the hash of the build_image.sh that built it
HERE = Path(__file__).resolve().parent
_MUX_HDR = struct.Struct(">II")
START_TIMEOUT_S = 60.0

# Reads the worker package's source from stdin, loads it as the package `worker`, runs its mux.
_BOOT = (
    "import sys,os,struct,json,types\n"
    "def rd(n):\n"
    "    b=b''\n"
    "    while len(b)<n:\n"
    "        c=os.read(0,n-len(b))\n"
    "        if not c: os._exit(3)\n"
    "        b+=c\n"
    "    return b\n"
    "blob=json.loads(rd(struct.unpack('>I',rd(4))[0]))\n"
    "pkg=types.ModuleType('worker'); pkg.__path__=[]; pkg.__package__='worker'; sys.modules['worker']=pkg\n"
    "for name, src in blob['modules']:\n"
    "    m=types.ModuleType('worker.'+name); m.__package__='worker'; m.__file__='/tinyact/worker/'+name+'.py'\n"
    "    sys.modules[m.__name__]=m; setattr(pkg,name,m)\n"
    "    exec(compile(src,m.__file__,'exec'),m.__dict__)\n"
    "sys.modules['worker.mux'].main(blob['cfg'])\n"
)


def engine_client():
    """A docker SDK client whose engine answered a ping; else SandboxError (BACKEND_UNAVAILABLE) saying why."""
    try:
        import docker
    except ImportError as e:
        raise SandboxError(
            "the docker backend needs the docker SDK: pip install 'tinyact[docker]'",
            code=SandboxErrorCode.BACKEND_UNAVAILABLE,
        ) from e
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure means: no engine
        raise SandboxError(
            f"no Docker engine reachable (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}): {e}",
            code=SandboxErrorCode.BACKEND_UNAVAILABLE,
        ) from None
    return client


@functools.cache
def image_recipe() -> str | None:
    """The hash build_image.sh labels its images with (its first 16 hex of sha256), None without the script."""
    try:
        return hashlib.sha256((HERE / "build_image.sh").read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def image_problem(image: str, labels: dict[str, str] | None) -> str | None:
    """Why the image with these labels must not be used as the sandbox, or None when it may.

    An image without the ``tinyact.sandbox.image`` label is someone's own and is used
    as it is; one built by build_image.sh must carry this checkout's recipe hash.
    """
    labels = labels or {}
    if IMAGE_LABEL not in labels:
        return None
    if labels[IMAGE_LABEL] != "1":
        return f"image {image} is not a sandbox image (label {IMAGE_LABEL}={labels[IMAGE_LABEL]!r}): " \
               "use tinyact-sandbox:latest, built with `tinyact sandbox image`"
    want, have = image_recipe(), labels.get(RECIPE_LABEL)
    if want is not None and have != want:
        return (f"image {image} was built by another sandbox/build_image.sh (recipe {have or 'unlabelled'}, this "
                f"tinyact's is {want}; it may lack what code expects, e.g. numpy and sympy): rebuild it with "
                "`tinyact sandbox image`")
    return None


def _image_labels(client, image: str) -> dict[str, str]:
    """The image's labels; SandboxError (BACKEND_UNAVAILABLE) when it is missing or must not be used."""
    try:
        labels = client.images.get(image).labels or {}
    except Exception:  # noqa: BLE001 - not found, or the engine could not say
        raise SandboxError(f"docker image {image} not found: build it with `tinyact sandbox image`",
                           code=SandboxErrorCode.BACKEND_UNAVAILABLE) from None
    problem = image_problem(image, labels)
    if problem:
        raise SandboxError(problem, code=SandboxErrorCode.BACKEND_UNAVAILABLE)
    return labels


def docker_available(image: str | None = None) -> tuple[bool, str]:
    """(works, why): SDK importable, engine answering, image present and of this recipe."""
    try:
        client = engine_client()
    except SandboxError as e:
        return False, str(e)
    image = image or DEFAULT_IMAGE
    try:
        labels = _image_labels(client, image)
    except SandboxError as e:
        return False, str(e)
    finally:
        client.close()
    recipe = f"recipe {labels[RECIPE_LABEL]}" if RECIPE_LABEL in labels else "not built by build_image.sh"
    return True, f"engine ok, image {image} ({recipe})"


def sweep_orphans(client) -> int:
    """Remove sandbox containers whose owning process (on this host) is gone."""
    removed = 0
    host = socket.gethostname()
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        labels = c.labels or {}
        if labels.get("tinyact.owner_host") != host:
            continue
        try:
            pid = int(labels.get("tinyact.owner_pid", "0"))
        except ValueError:
            pid = 0
        if pid and _alive(pid):
            continue
        try:
            c.remove(force=True)
            removed += 1
        except Exception:  # noqa: BLE001 - already gone
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _MuxTransport:
    """One session's bytes over the container's shared stream (a transport of ``Channel``)."""

    def __init__(self, box: DockerSandbox, sid: int) -> None:
        self.box = box
        self.sid = sid
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.new_sids: queue.Queue[int] = queue.Queue()
        self.eof = False

    def fileno(self) -> int:
        return -1

    def send(self, data: bytes, fds: list[int] | None = None) -> None:
        if self.eof:
            raise EOFError
        self.box.write(self.sid, data)

    def recv(self, deadline: float | None, want_fds: bool) -> tuple[bytes, list[int]]:
        if self.eof:
            raise EOFError
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            chunk = self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if chunk is None:
            self.eof = True
            raise EOFError
        return chunk, []

    def close(self) -> None:
        if not self.eof:
            self.eof = True
            self.box.control({"op": "close", "sid": self.sid})
        self.box.channels.pop(self.sid, None)


class DockerSandbox(RefCounted):
    """One container and the attached worker stream; shared by a session and its forks."""

    backend = "docker"
    isolation = "docker"

    def __init__(self, limits: Limits, tools: list[str], image: str | None = None) -> None:
        self.limits = limits
        self.image = image or DEFAULT_IMAGE
        self._refs = 0
        self._lock = threading.Lock()
        self._wlock = threading.Lock()
        self.channels: dict[int, _MuxTransport] = {}
        self._stderr = bytearray()
        self._closed = False
        self.client = engine_client()
        try:
            _image_labels(self.client, self.image)
        except SandboxError:
            self.client.close()
            raise
        sweep_orphans(self.client)
        self._uid = lease_uid(switchable=True)  # a process budget (RLIMIT_NPROC) of its own
        self.uid = self._uid.uid
        mb = limits.memory_mb
        try:
            self.container = self.client.containers.run(
                self.image,
                ["sleep", "infinity"],
                detach=True,
                init=True,
                auto_remove=True,
                network_mode="none",
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                user=f"{self.uid}:{self.uid}",
                # The whole sandbox (a session and all its forks) shares these.
                mem_limit=f"{mb * 4}m",
                memswap_limit=f"{mb * 4}m",
                pids_limit=limits.processes * 4,
                nano_cpus=int(2e9),
                tmpfs={"/.tinyact": f"size={limits.scratch_mb}m,uid={self.uid},gid={self.uid},mode=0700,exec"},
                environment={},
                working_dir="/",
                labels={
                    LABEL: "1",
                    "tinyact.owner_host": socket.gethostname(),
                    "tinyact.owner_pid": str(os.getpid()),
                },
            )
        except Exception as e:  # noqa: BLE001
            self._uid.release()
            raise SandboxError(f"could not start the sandbox container: {e}", code=SandboxErrorCode.START_FAILED) from e
        try:
            self._attach(tools)
        except BaseException:
            self.terminate()
            raise

    def _attach(self, tools: list[str]) -> None:
        cfg = {
            "isolation": "docker",
            "limits": self.limits.to_dict(),
            "tools": tools,
            "seccomp_bpf": base64.b64encode(filter_bpf()).decode(),
            "uid": self.uid,
            "scratch_root": "/.tinyact/scratch",
            "scratch": "/scratch",
        }
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/scratch", "TMPDIR": "/scratch",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # numpy's BLAS: one thread, as in the process backend
        exec_id = self.client.api.exec_create(
            self.container.id,
            ["python3", "-E", "-s", "-B", "-c", _BOOT],
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            user=f"{self.uid}:{self.uid}",
            environment=env,
            workdir="/",
        )["Id"]
        sock = self.client.api.exec_start(exec_id, socket=True)
        self._raw = getattr(sock, "_sock", sock)
        self._raw.settimeout(None)
        modules = [(name, (HERE / "worker" / f"{name}.py").read_text()) for name in MODULES]
        data = json.dumps({"modules": modules, "cfg": cfg}).encode()
        self._raw.sendall(struct.pack(">I", len(data)) + data)
        self.channels[1] = _MuxTransport(self, 1)
        self._reader = threading.Thread(target=self._read_loop, name="tinyact-docker-reader", daemon=True)
        self._reader.start()

    # ------------------------------------------------------------------ stream
    def write(self, sid: int, payload: bytes) -> None:
        with self._wlock:
            try:
                self._raw.sendall(_MUX_HDR.pack(sid, len(payload)) + payload)
            except OSError as e:
                raise EOFError from e

    def control(self, msg: dict[str, Any]) -> None:
        try:
            self.write(0, json.dumps(msg).encode())
        except EOFError:
            pass

    def _read_loop(self) -> None:
        """Docker's stream frames (8-byte header: stream, size) -> mux frames -> channels."""
        raw = bytearray()
        out = bytearray()
        try:
            while True:
                chunk = self._raw.recv(1 << 16)
                if not chunk:
                    break
                raw += chunk
                while len(raw) >= 8:
                    stream, size = raw[0], struct.unpack_from(">I", raw, 4)[0]
                    if len(raw) < 8 + size:
                        break
                    payload = bytes(raw[8 : 8 + size])
                    del raw[: 8 + size]
                    if stream == 1:
                        out += payload
                    else:
                        self._stderr += payload
                        del self._stderr[:-8000]
                while len(out) >= _MUX_HDR.size:
                    sid, n = _MUX_HDR.unpack_from(out)
                    if len(out) < _MUX_HDR.size + n:
                        break
                    if n > MAX_FRAME + 8:
                        raise OSError(f"the container sent a {n}-byte mux frame")
                    payload = bytes(out[_MUX_HDR.size : _MUX_HDR.size + n])
                    del out[: _MUX_HDR.size + n]
                    self._route(sid, payload)
        except (OSError, ValueError, KeyError, TypeError) as e:  # a broken stream: every session is dead
            self._stderr += f"\n[host] the container's stream broke: {e}".encode()
        finally:
            for chan in list(self.channels.values()):
                chan.inbox.put(None)

    def _route(self, sid: int, payload: bytes) -> None:
        if sid == 0:
            msg = decode(payload)
            if msg.get("op") == "newsid":
                new = _MuxTransport(self, int(msg["sid"]))
                self.channels[new.sid] = new
                parent = self.channels.get(int(msg["parent"]))
                if parent is not None:
                    parent.new_sids.put(new.sid)
            elif msg.get("op") == "eof":
                chan = self.channels.get(int(msg["sid"]))
                if chan is not None:
                    chan.inbox.put(None)
            return
        chan = self.channels.get(sid)
        if chan is not None:
            chan.inbox.put(payload)

    def log_tail(self, n: int = 2000) -> str:
        return self._stderr[-n:].decode(errors="replace")

    # ------------------------------------------------------------------ Sandbox protocol
    def start(self) -> tuple[Channel, dict[str, Any]]:
        chan = Channel(self.channels[1])
        try:
            msg, _ = chan.recv(time.monotonic() + START_TIMEOUT_S)
        except (EOFError, TimeoutError, ProtocolError) as e:
            tail = self.log_tail()
            self.terminate()
            raise SandboxError(
                f"the docker sandbox worker failed to start ({type(e).__name__}): {tail}",
                code=SandboxErrorCode.START_FAILED,
            ) from None
        if msg.get("op") != "hello" or not msg.get("ok"):
            self.terminate()
            raise SandboxError(
                f"the docker sandbox worker failed to start: {msg.get('error', msg)}", code=SandboxErrorCode.START_FAILED
            )
        self._refs = 1
        return chan, msg

    def accept_fork(self, chan: Channel, deadline: float, n: int) -> list[tuple[Channel, dict[str, Any]]]:
        msg, _ = chan.recv(deadline)
        pids = msg.get("pids") or []
        if msg.get("op") != "forked" or not pids:
            raise SandboxError(f"fork failed in the sandbox: {msg.get('error', msg)}", code=SandboxErrorCode.PROTOCOL)
        out = []
        for pid in pids:
            left = max(0.0, deadline - time.monotonic())
            try:
                sid = chan.transport.new_sids.get(timeout=left)
            except queue.Empty:
                raise TimeoutError from None
            out.append((Channel(self.channels[sid]), {"pid": pid}))
        return out

    def terminate(self) -> None:
        """Close the stream (the worker kills everything) and remove the container."""
        if self._closed:
            return
        self._closed = True
        for chan in list(self.channels.values()):
            chan.eof = True
            chan.inbox.put(None)
        raw = getattr(self, "_raw", None)
        if raw is not None:
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            raw.close()
        container = getattr(self, "container", None)
        if container is not None:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - auto_remove may have won
                pass
        self.client.close()
        self._uid.release()


def start_docker_session(*, limits: Limits, tools: dict[str, Any], image: str | None = None) -> Session:
    box = DockerSandbox(limits, sorted(tools), image)
    chan, hello = box.start()
    return Session(chan, box, limits=limits, tools=tools, info=hello)  # type: ignore[arg-type]

