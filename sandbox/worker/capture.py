"""Output capture inside the sandbox: what the code prints goes to memfds.

Standard library only. An executor's fds 1 and 2 are memfds that its holder
shares, so output printed before a timeout or a crash survives the process
that printed it; ``sys.stdout``/``sys.stderr`` write through to them, each cut
at ``limit`` bytes.
"""

from __future__ import annotations

import io
import os

from .protocol import write_all


class Capture(io.TextIOBase):
    """sys.stdout / sys.stderr replacement: writes through to `fd` (a memfd the
    holder also has, so output survives a timeout), at most `limit` + 1 bytes."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd = fd
        self.limit = limit
        self.size = 0
        self.buffer = BytesCapture(self)

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
            write_all(self.fd, b)
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


class BytesCapture(io.RawIOBase):
    def __init__(self, text: Capture) -> None:
        self.text = text

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.text.write_bytes(bytes(b))
        return len(b)


def read_output(fd: int, limit: int, name: str) -> tuple[str, bool]:
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


def clean(s: str) -> str:
    """Replace what cannot be encoded as UTF-8 (lone surrogates)."""
    return s.encode("utf-8", "replace").decode("utf-8")
