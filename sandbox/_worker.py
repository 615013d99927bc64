"""The sandbox worker: a fork server that holds the agent's Python globals.

Standard library only; runs as a script (``python3 _worker.py CONFIG_JSON``)
inside the sandbox (bwrap, unshare, a container, or nothing), with
``_seccomp.py`` next to it. The host side is ``tinyact.sandbox.session``.

Processes (inside one sandbox)::

    init                 first process: subreaper, reaps orphans, watches the
     |                   host's lifeline pipe; kills everything when it closes
     +-- holder          holds the globals of one session; keeps a standby,
          |              watches it (timeout, crash), makes forks
          +-- standby    a pre-forked copy of the holder: reads the session's
                         channel and runs the next execute itself. On success
                         it *becomes* the holder (the old one exits) and forks
                         its own standby; on a timeout or a crash the holder
                         kills it, answers for it and goes on with the state
                         from before that execute.

``fork`` forks the holder: the child is the holder of a new, independent
session whose channel (a new AF_UNIX socketpair) is handed to the host with
SCM_RIGHTS. Each session has its own scratch directory: the path the code sees
(``/scratch`` under bwrap) is a symlink to ``/proc/self/fd/3``, and fd 3 is
the session's own directory, which a fork copies first. So files written by
one fork are invisible to its parent and siblings, without mount privileges.

Wire format, both ways: 4-byte big-endian length + UTF-8 JSON object with an
"op" key. Host -> worker: exec, fork (n), tool_result, ping. Worker -> host:
hello, result, tool, forked (carries n fds), pong. Standby -> holder, on a
pipe: "x" + frame (an execute started), "f" + frame (a fork request), "c"
(committed).
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import errno
import io
import json
import linecache
import os
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import time
import traceback

SCRATCH_FD = 3
TAIL_DELAY_S = 0.002
# An execute that finds the process limit reached waits this long for processes that are
# ending (closed forks, killed strays) to free a slot before it fails.
SLOT_WAIT_S = 2.0
CODE_FILENAME = "<code>"
_HDR = struct.Struct(">I")
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)
_LOG_FD = 2  # replaced by a private copy of the original stderr at start-up


def _prctl(option: int, arg: int) -> None:
    _libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


# --------------------------------------------------------------------------- channel


class Channel:
    """Length-prefixed JSON messages over a connected stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def send(self, msg: dict, fds: list[int] | None = None) -> None:
        data = json.dumps(msg, ensure_ascii=True).encode()
        frame = _HDR.pack(len(data)) + data
        if fds:
            n = socket.send_fds(self.sock, [frame], fds)
            frame = frame[n:]
        if frame:
            self.sock.sendall(frame)

    def recv(self) -> dict | None:
        """The next message, or None at end of stream."""
        while True:
            if len(self.buf) >= 4:
                (n,) = _HDR.unpack_from(self.buf)
                if len(self.buf) >= 4 + n:
                    data = bytes(self.buf[4 : 4 + n])
                    del self.buf[: 4 + n]
                    return json.loads(data)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self.buf += chunk


# --------------------------------------------------------------------------- output capture


class _Capture(io.TextIOBase):
    """sys.stdout / sys.stderr replacement: writes through to `fd` (a memfd the
    holder also has, so output survives a timeout), at most `limit` + 1 bytes."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd = fd
        self.limit = limit
        self.size = 0
        self.buffer = _BytesCapture(self)

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self.write_bytes(s.encode("utf-8", "replace"))
        return len(s)

    def write_bytes(self, b: bytes) -> None:
        room = self.limit + 1 - self.size
        if room <= 0 or not b:
            return
        b = b[:room]
        try:
            _write_all(self.fd, b)
        except OSError:
            pass
        self.size += len(b)

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fd

    @property
    def encoding(self) -> str:
        return "utf-8"

    @property
    def errors(self) -> str:
        return "replace"


class _BytesCapture(io.RawIOBase):
    def __init__(self, text: _Capture) -> None:
        self.text = text

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.text.write_bytes(bytes(b))
        return len(b)


def _read_output(fd: int, limit: int, name: str) -> tuple[str, bool]:
    """What was written to memfd `fd`: (text cut at `limit` bytes with a marker, truncated)."""
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, min(size, limit), 0) if size else b""
    except OSError:
        return "", False
    text = data.decode("utf-8", "replace")
    if size > limit:
        return text + f"\n[... {name} truncated at {limit} bytes ...]\n", True
    return text, False


def _clean(s: str) -> str:
    """Replace what cannot be encoded as UTF-8 (lone surrogates)."""
    return s.encode("utf-8", "replace").decode("utf-8")


# --------------------------------------------------------------------------- in-sandbox API


class _Switch(BaseException):
    """Unwinds a freshly forked process to Worker.serve(); job: what to run first."""

    def __init__(self, job) -> None:
        super().__init__()
        self.job = job


class FinalAnswerException(BaseException):
    """Raised by final_answer(); a BaseException so `except Exception` cannot swallow it."""

    def __init__(self, value) -> None:
        super().__init__(value)
        self.value = value


class ToolError(RuntimeError):
    """A host-side tool failed; the message says why."""


def _final_answer(answer=None):
    raise FinalAnswerException(answer)


def _json_safe(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


# --------------------------------------------------------------------------- worker


class Worker:
    def __init__(self, cfg: dict, chan: Channel) -> None:
        self.cfg = cfg
        self.chan = chan
        self.limits = cfg["limits"]
        self.out_limit = int(self.limits["output_bytes"])
        self.default_timeout = float(self.limits["timeout_s"])
        self.scratch_root = cfg["scratch_root"]
        self.forks: set[int] = set()  # live children that are forks (legitimate)
        self.fork_count = 0
        self.globals: dict = {"__name__": "__main__", "__builtins__": builtins}
        self.globals["final_answer"] = _final_answer
        self.globals["ToolError"] = ToolError
        for name in cfg.get("tools", []):
            self.globals[name] = self._make_tool(name)
        self.exec_count = 0
        self.home_pgid = os.getpgid(0)  # the sandbox's group, made by init's setsid
        self.exec_home_pgid: int | None = None
        self.pending_commit: int | None = None
        # (pid, go pipe, commit pipe, pidfd, stdout memfd, stderr memfd) of the
        # pre-forked next executor
        self.standby: tuple | None = None

    # tools ---------------------------------------------------------------
    def _make_tool(self, name: str):
        worker = self

        def tool(*args, **kwargs):
            try:
                msg = {"op": "tool", "name": name, "args": list(args), "kwargs": kwargs}
                json.dumps(msg)
            except (TypeError, ValueError) as e:
                raise TypeError(f"arguments of tool {name!r} must be JSON-serializable: {e}") from None
            worker.chan.send(msg)
            while True:
                reply = worker.chan.recv()
                if reply is None:
                    os._exit(3)  # host gone
                if reply.get("op") == "tool_result":
                    break
            if reply.get("ok"):
                return reply.get("value")
            raise ToolError(reply.get("error", "tool failed"))

        tool.__name__ = tool.__qualname__ = name
        tool.__doc__ = f"Host-side tool {name!r}: arguments and result travel as JSON."
        return tool

    # main loop -----------------------------------------------------------
    def serve(self) -> None:
        """Serve the channel until it closes. Never returns.

        Two roles. The *standby* (a fresh fork of the holder) reads the channel
        and runs the next execute itself, so the code reaches the process that
        runs it in one hop; it tells the holder over a pipe when an execute
        starts ("x"), hands it fork requests ("f"), and commits ("c") once it
        has answered. The *holder* watches: it enforces the timeout, kills the
        executor if needed and answers for it, makes forks, and exits on commit.

        A process forked deep in the call stack (a standby, a fork) raises
        _Switch to come back here, so the stack stays flat however many
        executes the chain of holders runs.
        """
        job = None
        while True:
            try:
                if job is not None:
                    note_w, job = job, None
                    self._standby_loop(note_w)  # returns when this process has become the holder
                self._hold()
            except _Switch as sw:
                job = sw.job
            except BaseException:  # noqa: BLE001 - a worker bug: log it where the host can read it
                try:
                    os.write(_LOG_FD, traceback.format_exc().encode())
                except OSError:
                    pass
                os._exit(5)

    def _standby_loop(self, note_w: int) -> None:
        """Read requests; run the first execute (then return as the new holder)."""
        while True:
            try:
                msg = self.chan.recv()
            except (OSError, ValueError) as e:
                _debug(f"standby {os.getpid()}: channel error {e!r}")
                msg = None
            if msg is None:
                os._exit(0)  # closed; the holder notices and exits too
            op = msg.get("op")
            if op == "exec":
                msg["t0"] = time.perf_counter()
                timeout = float(msg.get("timeout") or self.default_timeout)
                note = json.dumps({"id": msg.get("id"), "timeout": timeout, "t0": msg["t0"]}).encode()
                _write_all(note_w, b"x" + _HDR.pack(len(note)) + note)
                self._run_child(msg, note_w)
                return
            if op == "fork":
                data = json.dumps(msg).encode()
                _write_all(note_w, b"f" + _HDR.pack(len(data)) + data)
            elif op == "ping":
                self.chan.send({"op": "pong", "id": msg.get("id")})
            elif op == "close":
                os._exit(0)
            # a stray tool_result (its executor was killed): ignore

    def _hold(self) -> None:
        """The holder's loop: keep a standby, watch it, serve forks."""
        while True:
            if self.pending_commit is not None or self.standby is None:
                # The tail of an execute (the old holder's exit, the next
                # standby's fork) waits a moment, so that it does not compete
                # for the CPU with the host reading the reply; it starts at
                # once when the next request comes in.
                if self.pending_commit is not None and not self.chan.buf:
                    ready, _, _ = select.select([self.chan.sock], [], [], TAIL_DELAY_S)
                    if ready and _at_eof(self.chan.sock):  # closed: no standby needed
                        self._commit()
                        os._exit(0)
                if self._commit():
                    self._refresh_if_cpu_spent()
                self._spawn_standby()
                if self.standby is None:
                    self._serve_one_without_standby()
                    continue
            pid, note_r, pidfd, out_fd, err_fd = self.standby
            waiting = [note_r] + ([pidfd] if pidfd is not None else [])
            ready, _, _ = select.select(waiting, [], [], None if pidfd is not None else 0.5)
            kind = os.read(note_r, 1) if note_r in ready else b""
            if kind == b"f":
                self.do_fork(json.loads(_read_frame(note_r) or b"{}"))
            elif kind == b"x":
                self._watch_exec(json.loads(_read_frame(note_r) or b"{}"))
            elif note_r in ready or (pidfd is not None and pidfd in ready) or _dead(pid):
                # The standby ended without taking an execute: the channel closed
                # (then so do we), or it was killed (then make another).
                self._drop_standby(kill=True)
                if _at_eof(self.chan.sock):
                    os._exit(0)

    def _serve_one_without_standby(self) -> None:
        """No standby could be forked (process limit): answer one request here."""
        try:
            msg = self.chan.recv()
        except (OSError, ValueError):
            msg = None
        if msg is None:
            os._exit(0)
        op = msg.get("op")
        if op == "exec":
            self._kill_strays()
            if self._standby_for(msg):
                return
            self._send_result(
                msg.get("id"),
                time.perf_counter(),
                error=("ProcessLimitError", "could not fork an executor: process limit reached", ""),
            )
        elif op == "fork":
            self.do_fork(msg)
        elif op == "ping":
            self.chan.send({"op": "pong", "id": msg.get("id")})
        elif op == "close":
            os._exit(0)
        time.sleep(0.01)  # let processes that are ending end before the next try

    def _standby_for(self, msg: dict) -> bool:
        """Retry the standby's fork for up to SLOT_WAIT_S, handing it `msg`: True once it has it.

        Forks that were just closed, or strays just killed, take a moment to end
        and free their processes. The standby is a copy of this process: it finds
        `msg` first in its copy of the channel buffer; this holder's copy drops it.
        """
        frame = json.dumps(msg).encode()
        frame = _HDR.pack(len(frame)) + frame
        give_up = time.monotonic() + SLOT_WAIT_S
        while time.monotonic() < give_up:
            time.sleep(0.02)
            self._reap()
            self.chan.buf[:0] = frame
            self._spawn_standby()  # in the standby this raises _Switch, `msg` still in its buffer
            del self.chan.buf[: len(frame)]
            if self.standby is not None:
                return True
        return False

    # fork ----------------------------------------------------------------
    def do_fork(self, msg: dict) -> None:
        """Fork `n` independent sessions; their channels go back in one message."""
        self._reap()
        n = max(1, min(int(msg.get("n") or 1), 64))
        ends: list[socket.socket] = []
        pids: list[int] = []
        error = None
        for _ in range(n):
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            self.fork_count += 1
            tag = f"f{os.getpid()}-{self.fork_count}"
            try:
                pid = _fork_retrying(self._reap)
            except OSError as e:
                a.close()
                b.close()
                error = f"fork failed: {e}"
                break
            if pid == 0:
                try:
                    for end in (*ends, a):
                        end.close()
                    self._drop_standby()
                    if self.pending_commit is not None:  # the parent's to make, not ours
                        os.close(self.pending_commit)
                        self.pending_commit = None
                    self.chan.sock.close()
                    self.chan = Channel(b)
                    self.forks = set()
                    self._new_scratch(tag)
                    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
                except BaseException:
                    os._exit(4)
                raise _Switch(None)
            b.close()
            self.forks.add(pid)
            ends.append(a)
            pids.append(pid)
        if not ends:
            self.chan.send({"op": "forked", "id": msg.get("id"), "error": error})
            return
        self.chan.send({"op": "forked", "id": msg.get("id"), "pids": pids}, fds=[e.fileno() for e in ends])
        for end in ends:
            end.close()

    def _new_scratch(self, tag: str) -> None:
        """Give this process its own copy of the scratch directory on fd 3."""
        new = os.path.join(self.scratch_root, tag)
        src = f"/proc/self/fd/{SCRATCH_FD}"
        try:
            with os.scandir(src) as it:
                empty = next(it, None) is None
            if empty:
                os.mkdir(new)
            else:
                shutil.copytree(src, new, symlinks=True)
        except (OSError, shutil.Error):
            os.makedirs(new, exist_ok=True)
        fd = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
        os.dup2(fd, SCRATCH_FD, inheritable=True)
        os.close(fd)
        try:
            os.chdir(self.cfg["scratch"])
        except OSError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.forks.discard(pid)

    def _kill_strays(self, pgid: int | None = None) -> None:
        """Kill what the user's code left running.

        First the executor's process group in one atomic kill (a fork bomb
        cannot outrun it), then, for processes that left the group (setsid),
        this process's children that are not forks: the holder is a subreaper,
        so orphans of the user's processes become its children; repeat until
        none is left (each kill may orphan more).
        """
        me = os.getpid()
        if pgid is not None:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        if not self.forks and self.standby is None:
            try:  # one cheap call answers the common case: no child process at all
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
        path = f"/proc/{me}/task/{me}/children"
        give_up = time.monotonic() + 3.0
        while time.monotonic() < give_up:
            try:
                with open(path) as f:
                    pids = [int(p) for p in f.read().split()]
            except OSError:
                pids = _children_by_scan(me)
            keep = self.forks | ({self.standby[0]} if self.standby else set())
            strays = [p for p in pids if p not in keep]
            if not strays:
                break
            for p in strays:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            for p in strays:
                try:
                    os.waitpid(p, 0)
                except OSError:
                    pass
        self._reap()

    # exec ----------------------------------------------------------------
    def _spawn_standby(self) -> None:
        """Fork the next executor now, so an execute does not wait for a fork.

        The standby is a copy of this holder; holder state does not change
        between this fork and the execute the standby will run (only fork
        requests come in between, and they change nothing).
        """
        if self.standby is not None:
            return
        note_r, note_w = os.pipe()
        out_fd = os.memfd_create("stdout", os.MFD_CLOEXEC)
        err_fd = os.memfd_create("stderr", os.MFD_CLOEXEC)
        try:
            pid = os.fork()
        except OSError:  # RLIMIT_NPROC reached (processes of the code itself?)
            for fd in (note_r, note_w, out_fd, err_fd):
                os.close(fd)
            return
        if pid == 0:
            os.close(note_r)
            # What the code and its processes print goes to memfds the holder shares.
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            os.close(out_fd)
            os.close(err_fd)
            self.standby = None
            self._prepare_executor()
            if not self.chan.buf and not select.select([self.chan.sock], [], [], 0)[0]:
                _warm_up()  # no request waiting yet: time to warm up
            raise _Switch(note_w)
        os.close(note_w)
        try:  # pollable handle on the standby, opened off the critical path
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        self.standby = (pid, note_r, pidfd, out_fd, err_fd)

    def _prepare_executor(self) -> None:
        """Everything an executor sets up before it runs code, done while it waits."""
        self.forks = set()  # the holder's forks are not our children
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        # The code's processes go into a group of their own, killed in one call afterwards.
        self.exec_home_pgid = None
        me = os.getpid()
        if self.home_pgid and self.home_pgid != me:
            try:
                os.setpgid(0, 0)
                self.exec_home_pgid = self.home_pgid
            except OSError:
                pass
        # fds 1 and 2 are memfds (see _spawn_standby); Python-level prints go there too.
        sys.stdout, sys.stderr = _Capture(1, self.out_limit), _Capture(2, self.out_limit)

    def _drop_standby(self, kill: bool = False) -> None:
        if self.standby is not None:
            pid, note_r, pidfd, out_fd, err_fd = self.standby
            self.standby = None
            for fd in (note_r, pidfd, out_fd, err_fd):
                if fd is not None:
                    os.close(fd)
            if kill:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:
                    pass

    def _watch_exec(self, note: dict) -> None:
        """The standby runs an execute: wait for its commit, its end, or the timeout."""
        xid, timeout, t0 = note.get("id"), float(note.get("timeout") or self.default_timeout), note.get("t0")
        t0 = t0 if isinstance(t0, float) else time.perf_counter()
        self.exec_count += 1
        pid, r, pidfd, out_fd, err_fd = self.standby  # type: ignore[misc]
        self.standby = None
        waiting = [r] + ([pidfd] if pidfd is not None else [])
        deadline = time.monotonic() + timeout
        committed = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(waiting, [], [], min(left, 0.5) if pidfd is None else left)
            if r in ready:
                data = os.read(r, 1)
                if data == b"c":
                    committed = True
                    break
                if not data:  # the executor (and everyone holding its pipe end) is gone
                    break
            if pidfd is not None and pidfd in ready:
                os.set_blocking(r, False)
                try:  # it exited; a commit byte may still sit in the pipe
                    if os.read(r, 1) == b"c":
                        committed = True
                except BlockingIOError:
                    pass
                break
            if pidfd is None and os.waitpid(pid, os.WNOHANG)[0] == pid:
                pid = -pid  # already reaped
                break
        if committed:
            # The executor is the holder now; this process is done.
            os._exit(0)
        timed_out = time.monotonic() >= deadline
        status = None
        if pid > 0:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                status = None
        os.close(r)
        if pidfd is not None:
            os.close(pidfd)
        self._kill_strays(abs(pid))
        stdout, t1 = _read_output(out_fd, self.out_limit, "stdout")
        stderr, t2 = _read_output(err_fd, self.out_limit, "stderr")
        os.close(out_fd)
        os.close(err_fd)
        if timed_out:
            err = (
                "TimeoutError",
                f"execution exceeded the wall-clock limit of {timeout:g} s and was killed; "
                "variables are as they were before this execution",
                "",
            )
        else:
            err = _death_error(status, self.limits)
        self._send_result(xid, t0, error=err, stdout=_clean(stdout), stderr=_clean(stderr), truncated=t1 or t2)

    def _send_result(self, xid, t0, error=None, **fields) -> None:
        res = {"op": "result", "id": xid, "duration_s": time.perf_counter() - t0}
        if error is not None:
            res["error"] = {"type": error[0], "message": _clean(error[1]), "traceback": _clean(error[2])}
        res.update(fields)
        try:
            self.chan.send(res)
        except OSError:
            os._exit(0)  # the host closed this session meanwhile

    def _run_child(self, msg: dict, commit_fd: int) -> None:
        xid, code, t0 = msg.get("id"), msg.get("code", ""), msg["t0"]
        me = os.getpid()
        home_pgid = self.exec_home_pgid  # set by _prepare_executor
        linecache.cache[CODE_FILENAME] = (len(code), None, code.splitlines(True), CODE_FILENAME)
        result: dict = {}
        error = None
        try:
            body, last = _compile(code)
            exec(body, self.globals)
            if last is not None:
                value = eval(last, self.globals)
                if value is not None:
                    result["value"] = _clean(_truncate(repr(value), self.out_limit))
        except FinalAnswerException as e:
            result["called_final_answer"] = True
            result["final_answer"] = _json_safe(e.value)
        except BaseException as e:  # noqa: BLE001 - the user's error is the result
            if os.getpid() != me:
                os._exit(1)
            error = (type(e).__name__, _safe_str(e), _format_tb(e))
        if os.getpid() != me:  # a process the code forked fell through to here
            os._exit(0)
        group = None
        if home_pgid is not None:
            try:  # leave our group, then kill everything still in it
                os.setpgid(0, home_pgid)
                group = me
            except OSError:
                pass
        self._kill_strays(group)
        result["stdout"], t1 = _read_output(1, self.out_limit, "stdout")
        result["stderr"], t2 = _read_output(2, self.out_limit, "stderr")
        truncated = t1 or t2
        for fd in (1, 2):  # free the memory; the next executor gets fresh memfds
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
        result["truncated"] = truncated
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        self._send_result(xid, t0, error=error, **result)
        # Commit later (see _serve): the old holder exits then.
        self.pending_commit = commit_fd

    def _commit(self) -> bool:
        """The old holder exits; this process holds the state from now on."""
        fd, self.pending_commit = self.pending_commit, None
        if fd is None:
            return False
        try:
            os.write(fd, b"c")
        except OSError:  # the old holder is gone already (the code killed it)
            pass
        os.close(fd)
        return True

    def _refresh_if_cpu_spent(self) -> None:
        """RLIMIT_CPU counts per process: a holder that ran a long execute could
        hit it while idle, so hand the state to a fresh fork when over half used."""
        cpu = float(self.limits["cpu_s"])
        used = resource.getrusage(resource.RUSAGE_SELF)
        if used.ru_utime + used.ru_stime < cpu / 2:
            return
        try:
            pid = os.fork()
        except OSError:
            return  # try again after the next execute
        if pid != 0:
            os._exit(0)
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _warm_up() -> None:
    """Touch, in a fresh fork, the memory an execute will write to, so the
    copy-on-write page faults happen now rather than on the critical path."""
    try:
        msg = json.loads(json.dumps({"op": "exec", "id": 0, "code": "_ = 1\n_", "timeout": 1.0}))
        body, last = _compile(msg["code"])
        cap = _Capture(16)
        cap.write(repr(last))
        _clean(cap.getvalue()).encode()
        json.dumps({"op": "result", "stdout": "", "stderr": "", "truncated": False})
        ast.literal_eval("1")
    except Exception:  # noqa: BLE001
        pass


def _fork_retrying(reap, tries: int = 50) -> int:
    """os.fork(), retried briefly on EAGAIN: processes that were just told to
    end (closed sessions) still count against RLIMIT_NPROC for a moment."""
    for i in range(tries):
        try:
            return os.fork()
        except BlockingIOError:
            if i == tries - 1:
                raise
            reap()  # closed forks are zombies until reaped, and zombies count
            time.sleep(0.02)
    raise AssertionError("unreachable")


def _dead(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def _at_eof(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _compile(code: str):
    """Compile `code`; split off a last expression statement to report its value."""
    tree = ast.parse(code, CODE_FILENAME, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), CODE_FILENAME, "eval")
    return compile(tree, CODE_FILENAME, "exec"), last


def _read_frame(fd: int) -> bytes | None:
    hdr = _read_exact(fd, 4)
    if hdr is None:
        return None
    (n,) = _HDR.unpack(hdr)
    return _read_exact(fd, n)


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _debug(text: str) -> None:
    if os.environ.get("TINYACT_DEBUG"):
        try:
            os.write(_LOG_FD, (text + "\n").encode())
        except OSError:
            pass


def _truncate(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n] + f"... [truncated, {len(s)} chars]"


def _safe_str(e: BaseException) -> str:
    try:
        return str(e)
    except BaseException:  # noqa: BLE001
        return f"<unprintable {type(e).__name__}>"


def _format_tb(e: BaseException) -> str:
    """The traceback, keeping only frames of the user's code."""
    try:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == CODE_FILENAME]
        lines = ["Traceback (most recent call last):\n"] if frames else []
        lines += traceback.format_list(frames)
        lines += traceback.format_exception_only(type(e), e)
        return "".join(lines)
    except BaseException:  # noqa: BLE001
        return f"{type(e).__name__}\n"


def _death_error(status, limits: dict) -> tuple[str, str, str]:
    """An ExecError for an executor that died without reporting."""
    if status is None:
        return ("SandboxError", "the executing process vanished", "")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU:
            return ("CPUTimeLimitError", f"CPU time limit of {limits['cpu_s']} s exceeded (SIGXCPU)", "")
        if sig == signal.SIGSEGV:
            return ("CrashError", "the code crashed (SIGSEGV; a stack overflow from deep recursion?)", "")
        if sig == signal.SIGKILL:
            return (
                "KilledError",
                f"the code was killed (SIGKILL; CPU limit {limits['cpu_s']} s or memory "
                f"limit {limits['memory_mb']} MB?)",
                "",
            )
        return ("CrashError", f"the code was terminated by {name}", "")
    code = os.WEXITSTATUS(status)
    return ("ProcessExit", f"the code ended its process with exit status {code} (os._exit?)", "")


def _children_by_scan(ppid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
                pids.append(int(name))
        except (OSError, ValueError, IndexError):
            pass
    return pids


# --------------------------------------------------------------------------- start-up


def _apply_limits(limits: dict) -> None:
    mb = 1024 * 1024
    cpu = int(limits["cpu_s"])
    settings = [
        (resource.RLIMIT_AS, int(limits["memory_mb"]) * mb),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_FSIZE, int(limits["file_size_mb"]) * mb),
        (resource.RLIMIT_NOFILE, int(limits["open_files"])),
        (resource.RLIMIT_NPROC, int(limits["processes"])),
        (resource.RLIMIT_CORE, 0),
    ]
    for res, value in settings:
        soft, hard = value if isinstance(value, tuple) else (value, value)
        _, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
            soft = min(soft, hard)
        resource.setrlimit(res, (soft, hard))


def _drop_privileges() -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)


def _init_loop(lifeline: int, holder: int, isolation: str) -> None:
    """PID 'init' of the sandbox: reap orphans, end everything when the host goes."""
    # Wake up on SIGCHLD to reap at once: zombies count against RLIMIT_NPROC,
    # and every execute leaves one (the previous holder).
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        ready, _, _ = select.select([lifeline, wake_r], [], [], 1.0)
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
            ready.remove(wake_r)
        if ready:
            try:
                data = os.read(lifeline, 64)
            except OSError:
                data = b""
            if not data:
                break
        alive = True
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
                if pid and st and os.environ.get("TINYACT_DEBUG"):
                    os.write(_LOG_FD, f"init: {pid} ended with status {st}\n".encode())
            except ChildProcessError:
                alive = False
                break
            if pid == 0:
                break
        if not alive:
            _debug("init: no children left")
            break
    _debug("init: exiting")
    if isolation in ("none", "docker"):
        # No pid namespace of our own: end our session's group (we made it with setsid).
        try:
            os.killpg(0, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)


def main() -> None:
    run(json.loads(sys.argv[1]))


def run(cfg: dict) -> None:
    """Start init and the first holder on the channel fd named in `cfg`."""
    chan_fd = int(cfg["channel_fd"])
    lifeline = int(cfg["lifeline_fd"])
    sys.stdin = open(os.devnull)  # noqa: SIM115
    # fd 3 is reserved for the scratch directory.
    for name in ("channel_fd", "lifeline_fd"):
        if int(cfg[name]) == SCRATCH_FD:
            new = os.dup(SCRATCH_FD)
            os.close(SCRATCH_FD)
            cfg[name] = new
    chan_fd, lifeline = int(cfg["channel_fd"]), int(cfg["lifeline_fd"])
    global _LOG_FD
    _LOG_FD = os.dup(2)  # fd 2 itself is redirected per execute
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversize writes fail with EFBIG instead
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # A session and process group of our own, visible in our pid namespace:
    # executors leave it and come back to it (see _run_child).
    try:
        os.setsid()
    except OSError:
        pass
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    if cfg.get("die_with_parent"):
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    holder = os.fork()
    if holder != 0:
        os.close(chan_fd)
        _init_loop(lifeline, holder, cfg["isolation"])
        return
    os.close(lifeline)
    sock = socket.socket(fileno=chan_fd)
    chan = Channel(sock)
    checks: dict = {}
    try:
        if "_seccomp" not in sys.modules:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import _seccomp  # before dropping privileges: the file may not be readable after

        if cfg.get("drop_privileges", True):
            _drop_privileges()
        os.makedirs(cfg["scratch_root"], exist_ok=True)
        main_dir = os.path.join(cfg["scratch_root"], "main")
        os.makedirs(main_dir, exist_ok=True)
        fd = os.open(main_dir, os.O_RDONLY | os.O_DIRECTORY)
        os.dup2(fd, SCRATCH_FD, inheritable=True)
        os.close(fd)
        os.chdir(cfg["scratch"])
        _apply_limits(cfg["limits"])
        checks["rlimits"] = True
        if cfg.get("seccomp", True):
            _seccomp.install()
            checks["seccomp"] = True
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        worker = Worker(cfg, chan)
    except BaseException as e:  # noqa: BLE001
        chan.send({"op": "hello", "ok": False, "error": f"{type(e).__name__}: {e}"})
        os._exit(2)
    chan.send(
        {
            "op": "hello",
            "ok": True,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "python": sys.version.split()[0],
            "checks": checks,
        }
    )
    worker.serve()


# --------------------------------------------------------------------------- docker: one stream, many sessions

_MUX_HDR = struct.Struct(">II")  # session id (0: control), payload length


def mux_main(cfg: dict) -> None:
    """Entry point inside a container: stdin/stdout are one `docker exec` stream.

    This process (the mux) starts init and the first holder like `run`, then
    relays bytes between the stream and each session's AF_UNIX socket, every
    frame tagged with a session id. Forks hand their new socket to the mux
    (SCM_RIGHTS, as they hand it to the host in the process backend); the mux
    gives it a new id and announces it on the control id 0. When the stream
    ends (the host closed it, or died), the mux kills every process it can.
    """
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    life_r, life_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        os.close(wfd)
        os.close(life_w)
        a.close()
        cfg = dict(cfg, channel_fd=b.fileno(), lifeline_fd=life_r)
        b.set_inheritable(True)
        run(cfg)
        os._exit(0)
    b.close()
    os.close(life_r)
    try:
        _Mux(rfd, wfd, a).loop()
    finally:
        try:
            os.kill(-1, signal.SIGKILL)  # everything of our uid in the container but us
        finally:
            os._exit(0)


class _Mux:
    def __init__(self, rfd: int, wfd: int, first: socket.socket) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.socks: dict[int, socket.socket] = {1: first}
        self.next_sid = 2
        self.inbuf = bytearray()

    def send(self, sid: int, payload: bytes) -> None:
        _write_all(self.wfd, _MUX_HDR.pack(sid, len(payload)) + payload)

    def control(self, msg: dict) -> None:
        self.send(0, json.dumps(msg).encode())

    def drop(self, sid: int) -> None:
        sock = self.socks.pop(sid, None)
        if sock is not None:
            sock.close()
            self.control({"op": "eof", "sid": sid})

    def loop(self) -> None:
        while True:
            by_fd = {sock.fileno(): sid for sid, sock in self.socks.items()}
            ready, _, _ = select.select([self.rfd, *by_fd], [], [])
            if self.rfd in ready:
                chunk = os.read(self.rfd, 1 << 16)
                if not chunk:
                    return
                self.inbuf += chunk
                self._dispatch()
            for fd in ready:
                sid = by_fd.get(fd)
                if sid is None or sid not in self.socks:
                    continue
                try:
                    data, fds, _, _ = socket.recv_fds(self.socks[sid], 1 << 16, 64)
                except OSError:
                    data, fds = b"", []
                for new_fd in fds:
                    new_sid = self.next_sid
                    self.next_sid += 1
                    self.socks[new_sid] = socket.socket(fileno=new_fd)
                    self.control({"op": "newsid", "parent": sid, "sid": new_sid})
                if not data:
                    self.drop(sid)
                else:
                    self.send(sid, data)

    def _dispatch(self) -> None:
        while len(self.inbuf) >= _MUX_HDR.size:
            sid, n = _MUX_HDR.unpack_from(self.inbuf)
            if len(self.inbuf) < _MUX_HDR.size + n:
                return
            payload = bytes(self.inbuf[_MUX_HDR.size : _MUX_HDR.size + n])
            del self.inbuf[: _MUX_HDR.size + n]
            if sid == 0:
                msg = json.loads(payload)
                if msg.get("op") == "close":
                    sock = self.socks.pop(int(msg.get("sid", -1)), None)
                    if sock is not None:
                        sock.close()
                continue
            sock = self.socks.get(sid)
            if sock is not None:
                try:
                    sock.sendall(payload)
                except OSError:
                    self.drop(sid)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(130)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        os._exit(2)
