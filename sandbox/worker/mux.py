"""Inside a container: one ``docker exec`` stream carries every session of the sandbox.

Standard library only. The mux starts init and the first holder like
``boot.run``, then relays bytes between the stream and each session's AF_UNIX
socket, every frame tagged with a session id (``MUX_HEADER``: id, length; id 0
is control). Forks hand their new socket to the mux (SCM_RIGHTS, as they hand
it to the host in the process backend); the mux gives it a new id and
announces it on id 0. When the stream ends (the host closed it, or died), the
mux kills every process it can.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct

from .boot import run
from .protocol import MAX_FRAME, write_all

MUX_HEADER = struct.Struct(">II")  # session id (0: control), payload length


def main(cfg: dict) -> None:
    """Entry point inside a container: stdin/stdout are one `docker exec` stream."""
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
        b.set_inheritable(True)
        run(dict(cfg, channel_fd=b.fileno(), lifeline_fd=life_r))
        os._exit(0)
    b.close()
    os.close(life_r)
    try:
        Mux(rfd, wfd, a).loop()
    finally:
        try:
            os.kill(-1, signal.SIGKILL)  # everything of our uid in the container but us
        finally:
            os._exit(0)


class Mux:
    def __init__(self, rfd: int, wfd: int, first: socket.socket) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.socks: dict[int, socket.socket] = {1: first}
        self.next_sid = 2
        self.inbuf = bytearray()

    def send(self, sid: int, payload: bytes) -> None:
        write_all(self.wfd, MUX_HEADER.pack(sid, len(payload)) + payload)

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
        while len(self.inbuf) >= MUX_HEADER.size:
            sid, n = MUX_HEADER.unpack_from(self.inbuf)
            if n > MAX_FRAME + 8:
                raise ValueError(f"a {n}-byte mux frame from the host")
            if len(self.inbuf) < MUX_HEADER.size + n:
                return
            payload = bytes(self.inbuf[MUX_HEADER.size : MUX_HEADER.size + n])
            del self.inbuf[: MUX_HEADER.size + n]
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
