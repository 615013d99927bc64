"""The holder and its standby: one sandbox session's state, kept across executes.

Standard library only. Processes of one session::

    holder          holds the globals; keeps a standby, watches it (timeout,
     |              crash), makes forks
     +-- standby    a pre-forked copy of the holder: reads the session's
                    channel and runs the next execute itself. On success it
                    *becomes* the holder (the old one exits) and forks its own
                    standby; on a timeout or a crash the holder kills it,
                    answers for it and goes on with the state from before.

``fork`` forks the holder: the child is the holder of a new, independent
session whose channel (a new AF_UNIX socketpair) goes to the host with
SCM_RIGHTS. Each session has its own scratch directory on fd 3 (``/scratch`` is
a symlink to ``/proc/self/fd/3``), which a fork copies first.

Standby -> holder, on a pipe: "x" + frame (an execute started), "f" + frame (a
fork request), "c" (committed).
"""

from __future__ import annotations

import builtins
import json
import os
import select
import signal
import socket
import sys
import time
import traceback

from . import procs, reset
from .capture import Capture, clean, read_output
from .execute import ToolError, death_error, final_answer, make_tool, run_code, warm_up
from .protocol import HEADER, Channel, ProtocolError, encode, read_frame, write_all

TAIL_DELAY_S = 0.002
# An execute that finds the process limit reached waits this long for processes that are
# ending (closed forks, killed strays) to free a slot before it fails.
SLOT_WAIT_S = 2.0


class _Reincarnate(BaseException):
    """Unwinds a freshly forked process to Worker.serve(), which then runs it as
    a standby (reporting to its holder on `holder_pipe`) or, with None, as a holder."""

    def __init__(self, holder_pipe: int | None) -> None:
        super().__init__()
        self.holder_pipe = holder_pipe


def _next_request(chan: Channel) -> dict | None:
    """The next message from the host; None when the channel closed or broke."""
    try:
        return chan.recv()[0]
    except (EOFError, OSError, ProtocolError) as e:
        if not isinstance(e, EOFError):
            procs.debug(f"{os.getpid()}: channel error {e!r}")
        return None


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
        self.globals["final_answer"] = final_answer
        self.globals["ToolError"] = ToolError
        for name in cfg.get("tools", []):
            self.globals[name] = make_tool(name, self._call_host)
        self.home_pgid = os.getpgid(0)  # the sandbox's group, made by init's setsid
        self.exec_home_pgid: int | None = None
        self.pending_commit: int | None = None
        # (pid, note pipe, pidfd, stdout memfd, stderr memfd) of the pre-forked next executor
        self.standby: tuple | None = None

    def _call_host(self, msg: dict) -> dict:
        """Send a tool call and wait for its result (the code is blocked meanwhile)."""
        self.chan.send(msg)
        while True:
            reply = _next_request(self.chan)
            if reply is None:
                os._exit(3)  # host gone
            if reply.get("op") == "tool_result":
                return reply

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
        _Reincarnate to come back here, so the stack stays flat however many
        executes the chain of holders runs.
        """
        holder_pipe = None
        while True:
            try:
                if holder_pipe is not None:
                    pipe, holder_pipe = holder_pipe, None
                    self._standby_loop(pipe)  # returns when this process has become the holder
                self._hold()
            except _Reincarnate as r:
                holder_pipe = r.holder_pipe
            except BaseException:  # noqa: BLE001 - a worker bug: log it where the host can read it
                procs.log(traceback.format_exc())
                os._exit(5)

    def _standby_loop(self, holder_pipe: int) -> None:
        """Read requests; run the first execute (then return as the new holder)."""
        while True:
            msg = _next_request(self.chan)
            if msg is None:
                os._exit(0)  # closed; the holder notices and exits too
            op = msg.get("op")
            if op == "exec":
                msg["t0"] = time.perf_counter()
                timeout = float(msg.get("timeout") or self.default_timeout)
                note = json.dumps({"id": msg.get("id"), "timeout": timeout, "t0": msg["t0"]}).encode()
                write_all(holder_pipe, b"x" + HEADER.pack(len(note)) + note)
                self._execute(msg, holder_pipe)
                return
            if op in ("fork", "reset"):
                data = json.dumps(msg).encode()
                write_all(holder_pipe, (b"f" if op == "fork" else b"r") + HEADER.pack(len(data)) + data)
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
                    if ready and procs.at_eof(self.chan.sock):  # closed: no standby needed
                        self._commit()
                        os._exit(0)
                if self._commit():
                    procs.refresh_if_cpu_spent(float(self.limits["cpu_s"]))
                self._spawn_standby()
                if self.standby is None:
                    self._serve_one_without_standby()
                    continue
            pid, from_standby, pidfd, _, _ = self.standby
            waiting = [from_standby] + ([pidfd] if pidfd is not None else [])
            ready, _, _ = select.select(waiting, [], [], None if pidfd is not None else 0.5)
            kind = os.read(from_standby, 1) if from_standby in ready else b""
            if kind == b"f":
                self.make_forks(json.loads(read_frame(from_standby) or b"{}"))
            elif kind == b"x":
                self._watch_exec(json.loads(read_frame(from_standby) or b"{}"))
            elif kind == b"r":
                self.reset(json.loads(read_frame(from_standby) or b"{}"))
            elif from_standby in ready or (pidfd is not None and pidfd in ready) or procs.dead(pid):
                # The standby ended without taking an execute: the channel closed
                # (then so do we), or it was killed (then make another).
                self._drop_standby(kill=True)
                if procs.at_eof(self.chan.sock):
                    os._exit(0)

    def _serve_one_without_standby(self) -> None:
        """No standby could be forked (process limit): answer one request here."""
        msg = _next_request(self.chan)
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
                rolled_back=True,
            )
        elif op == "fork":
            self.make_forks(msg)
        elif op == "reset":
            self.reset(msg)
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
        frame = encode(msg)
        give_up = time.monotonic() + SLOT_WAIT_S
        while time.monotonic() < give_up:
            time.sleep(0.02)
            self._reap()
            self.chan.buf[:0] = frame
            self._spawn_standby()  # in the standby this raises _Reincarnate, `msg` still in its buffer
            del self.chan.buf[: len(frame)]
            if self.standby is not None:
                return True
        return False

    # fork ----------------------------------------------------------------
    def make_forks(self, msg: dict) -> None:
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
                pid = procs.fork_retrying(self._reap)
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
                    self.chan.close()
                    self.chan = Channel(b)
                    self.forks = set()
                    procs.new_scratch(os.path.join(self.scratch_root, tag), self.cfg["scratch"])
                    procs.prctl(procs.PR_SET_CHILD_SUBREAPER, 1)
                    if self.cfg.get("reusable"):
                        reset.dumpable()  # only init and the template hide from the code
                except BaseException:
                    os._exit(4)
                raise _Reincarnate(None)
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

    def reset(self, msg: dict) -> None:
        """A reusable sandbox's template: put the sandbox back as it started (see reset.py)."""
        if self.cfg.get("reusable"):
            self._drop_standby(kill=True)  # a fresh one is forked next
            keep = os.path.basename(os.readlink(f"/proc/self/fd/{procs.SCRATCH_FD}"))
            error = reset.reset(self.scratch_root, keep, self.cfg["isolation"])
            self.forks = set()
        else:
            error = "this sandbox was not started reusable"
        self.chan.send({"op": "reset", "id": msg.get("id"), "ok": error is None, "error": error})

    def _reap(self) -> None:
        self.forks.difference_update(procs.reap())

    def _kill_strays(self, pgid: int | None = None) -> None:
        keep = self.forks | ({self.standby[0]} if self.standby else set())
        procs.kill_strays(pgid, keep, bool(keep))
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
        from_standby, to_holder = os.pipe()
        out_fd = os.memfd_create("stdout", os.MFD_CLOEXEC)
        err_fd = os.memfd_create("stderr", os.MFD_CLOEXEC)
        try:
            pid = os.fork()
        except OSError:  # the process limit reached (processes of the code itself?)
            for fd in (from_standby, to_holder, out_fd, err_fd):
                os.close(fd)
            return
        if pid == 0:
            os.close(from_standby)
            # What the code and its processes print goes to memfds the holder shares.
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            os.close(out_fd)
            os.close(err_fd)
            self.standby = None
            self._prepare_executor()
            if not self.chan.buf and not select.select([self.chan.sock], [], [], 0)[0]:
                warm_up()  # no request waiting yet: time to warm up
            raise _Reincarnate(to_holder)
        os.close(to_holder)
        try:  # pollable handle on the standby, opened off the critical path
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        self.standby = (pid, from_standby, pidfd, out_fd, err_fd)

    def _prepare_executor(self) -> None:
        """Everything an executor sets up before it runs code, done while it waits."""
        self.forks = set()  # the holder's forks are not our children
        procs.forget_log()
        procs.prctl(procs.PR_SET_CHILD_SUBREAPER, 1)
        # The code's processes go into a group of their own, killed in one call afterwards.
        self.exec_home_pgid = None
        if self.home_pgid and self.home_pgid != os.getpid():
            try:
                os.setpgid(0, 0)
                self.exec_home_pgid = self.home_pgid
            except OSError:
                pass
        # fds 1 and 2 are memfds (see _spawn_standby); Python-level prints go there too.
        sys.stdout, sys.stderr = Capture(1, self.out_limit), Capture(2, self.out_limit)

    def _drop_standby(self, kill: bool = False) -> None:
        if self.standby is not None:
            pid, from_standby, pidfd, out_fd, err_fd = self.standby
            self.standby = None
            for fd in (from_standby, pidfd, out_fd, err_fd):
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
            os._exit(0)  # the executor is the holder now; this process is done
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
        stdout, t1 = read_output(out_fd, self.out_limit, "stdout")
        stderr, t2 = read_output(err_fd, self.out_limit, "stderr")
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
            err = death_error(status, self.limits)
        self._send_result(
            xid, t0, error=err, stdout=clean(stdout), stderr=clean(stderr), truncated=t1 or t2, rolled_back=True
        )

    def _send_result(self, xid, t0, error=None, **fields) -> None:
        res = {"op": "result", "id": xid, "duration_s": time.perf_counter() - t0}
        if error is not None:
            res["error"] = {"type": error[0], "message": clean(error[1]), "traceback": clean(error[2])}
        res.update(fields)
        try:
            self.chan.send(res)
        except OSError:
            os._exit(0)  # the host closed this session meanwhile

    def _execute(self, msg: dict, commit_fd: int) -> None:
        """Run one execute in this process (the standby), answer, and commit later."""
        home_pgid = self.exec_home_pgid  # set by _prepare_executor
        result, error = run_code(msg.get("code", ""), self.globals, self.out_limit)
        group = None
        if home_pgid is not None:
            try:  # leave our group, then kill everything still in it
                os.setpgid(0, home_pgid)
                group = os.getpid()
            except OSError:
                pass
        self._kill_strays(group)
        result["stdout"], t1 = read_output(1, self.out_limit, "stdout")
        result["stderr"], t2 = read_output(2, self.out_limit, "stderr")
        for fd in (1, 2):  # free the memory; the next executor gets fresh memfds
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
        result["truncated"] = t1 or t2
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        self._send_result(msg.get("id"), msg["t0"], error=error, **result)
        self.pending_commit = commit_fd  # committed in _hold: the old holder exits then

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
