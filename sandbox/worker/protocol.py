"""The wire format between the host and a sandbox, and the bounds the host keeps.

Standard library only (this file runs inside the sandbox too). One frame is a
4-byte big-endian length and a UTF-8 JSON object with an "op" key.

Host -> sandbox: exec, fork (n), tool_result, ping, close.
Sandbox -> host: hello, result, tool, forked (carries n fds), pong.

The host does not trust what comes back: ``decode`` refuses a frame over
``MAX_FRAME`` bytes, JSON nested deeper than ``MAX_DEPTH``, anything that is not
a JSON object, and says why with ``ProtocolError``; the host then treats the
sandbox as dead.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
"""Largest frame either side accepts (outputs are cut far below this)."""
MAX_DEPTH = 64
"""Deepest nesting of lists and objects accepted in a frame."""


class ProtocolError(ValueError):
    """A frame broke the protocol (too big, too deep, not JSON, not an object)."""


def encode(msg: dict) -> bytes:
    """One frame holding `msg`."""
    data = json.dumps(msg, ensure_ascii=True).encode()
    if len(data) > MAX_FRAME:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return HEADER.pack(len(data)) + data


def frame_size(buf: bytes | bytearray) -> int | None:
    """Length of the frame at the start of `buf`, or None until its header is complete."""
    if len(buf) < HEADER.size:
        return None
    (n,) = HEADER.unpack_from(buf)
    if n > MAX_FRAME:
        raise ProtocolError(f"a {n}-byte frame exceeds the {MAX_FRAME}-byte limit")
    return n


def decode(data: bytes) -> dict:
    """The message in a frame's payload; ProtocolError when it is not a bounded JSON object."""
    try:
        msg = json.loads(data)
    except RecursionError:
        raise ProtocolError(f"a frame nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise ProtocolError(f"malformed JSON frame: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"a frame holds a {type(msg).__name__}, not a JSON object")
    if too_deep(msg, 0):
        raise ProtocolError(f"a frame nests deeper than {MAX_DEPTH} levels")
    return msg


def too_deep(value: object, room: int = 4) -> bool:
    """Whether `value`, put `room` levels down in a message, would nest past MAX_DEPTH."""
    return _depth(value) + room > MAX_DEPTH


def _depth(value: object) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest = 0
    todo = [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        todo.extend((v, level + 1) for v in item if isinstance(v, (dict, list)))
    return deepest


def pop_frame(buf: bytearray) -> dict | None:
    """Take the first complete frame out of `buf` and decode it; None when incomplete."""
    n = frame_size(buf)
    if n is None or len(buf) < HEADER.size + n:
        return None
    data = bytes(buf[HEADER.size : HEADER.size + n])
    del buf[: HEADER.size + n]
    return decode(data)


class SocketTransport:
    """Bytes (and fds) over a connected AF_UNIX stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes, fds: list[int] | None = None) -> None:
        if fds:
            n = socket.send_fds(self.sock, [data], fds)
            data = data[n:]
        if data:
            self.sock.sendall(data)

    def recv(self, deadline: float | None, want_fds: bool) -> tuple[bytes, list[int]]:
        """The next chunk: EOFError at the end of the stream, TimeoutError at `deadline`."""
        if deadline is None:
            self.sock.settimeout(None)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
        try:
            if want_fds:
                chunk, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 64)
            else:
                chunk, fds = self.sock.recv(1 << 16), []
        except socket.timeout as e:
            raise TimeoutError from e
        if not chunk:
            for fd in fds:
                os.close(fd)
            raise EOFError
        return chunk, list(fds)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Channel:
    """Frames over a transport: the one channel of both sides and every backend.

    A transport has ``send(data, fds)``, ``recv(deadline, want_fds) -> (chunk,
    fds)`` (raising EOFError / TimeoutError) and ``close()``: a socket here, one
    multiplexed stream of a container in ``tinyact.sandbox.docker``.
    """

    def __init__(self, transport) -> None:
        if isinstance(transport, socket.socket):
            transport = SocketTransport(transport)
        self.transport = transport
        self.buf = bytearray()

    @property
    def sock(self) -> socket.socket:
        return self.transport.sock

    def fileno(self) -> int:
        return self.transport.fileno()

    def send(self, msg: dict, fds: list[int] | None = None) -> None:
        self.transport.send(encode(msg), fds)

    def recv(self, deadline: float | None = None, want_fds: bool = False) -> tuple[dict, list[int]]:
        """The next message and any fds that came with it.

        EOFError when the other side closed, TimeoutError at `deadline` (a
        ``time.monotonic()`` value), ProtocolError for a frame out of bounds;
        after a ProtocolError the channel is unusable.
        """
        fds: list[int] = []
        while True:
            try:
                msg = pop_frame(self.buf)
            except ProtocolError:
                for fd in fds:
                    os.close(fd)
                raise
            if msg is not None:
                return msg, fds
            chunk, more = self.transport.recv(deadline, want_fds)
            self.buf += chunk
            fds += more

    def close(self) -> None:
        self.transport.close()


def read_exact(fd: int, n: int) -> bytes | None:
    """`n` bytes from `fd`, or None at end of file."""
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(fd: int) -> bytes | None:
    """One length-prefixed payload from a pipe, or None at end of file."""
    hdr = read_exact(fd, HEADER.size)
    if hdr is None:
        return None
    (n,) = HEADER.unpack(hdr)
    if n > MAX_FRAME:
        raise ProtocolError(f"a {n}-byte frame exceeds the {MAX_FRAME}-byte limit")
    return read_exact(fd, n)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
