"""JSON Lines files that survive a kill: fsynced appends, a torn last line cut back, atomic rewrites.

Every JSONL file tinyact writes (eval results, trajectories, prefixes, SFT data)
goes through this module, so each one is resumable the same way:

- ``JsonlWriter`` / ``append`` add one line per record and flush + fsync it
  before returning. Before the first append, a half-written last line (a
  process killed mid-write) is cut back to the last newline, so a new record
  is never glued onto a torn one.
- ``rewrite`` replaces a whole file atomically (a temporary file beside it,
  fsynced, then ``os.replace``): readers see the old file or the new, never half.
- ``read_lines`` / ``iter_lines`` read back; lines that do not parse are skipped,
  and ``repair=True`` first cuts a torn tail on disk.

Records may be dicts (``json.dumps``), pydantic models (``model_dump_json``) or
ready JSON strings. Standard library only.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.jsonl"
    >>> append(path, [{"id": "a"}, {"id": "b"}])
    >>> [r["id"] for r in iter_lines(path)]
    ['a', 'b']
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

__all__ = ["JsonlWriter", "append", "dumps", "iter_lines", "read_lines", "repair_tail", "rewrite", "write_atomic"]

PathLike = str | os.PathLike[str]


def dumps(record: Any) -> str:
    """One record as one line of JSON (no newline): a str as is, a pydantic model by its own dumper."""
    if isinstance(record, str):
        return record
    dump = getattr(record, "model_dump_json", None)
    if callable(dump):
        return dump()
    return json.dumps(record, ensure_ascii=False, default=str)


def repair_tail(path: PathLike) -> int:
    """Cut a half-written last line (a crash mid-write) so appends start clean. Returns bytes cut."""
    p = Path(path)
    if not p.exists():
        return 0
    size = p.stat().st_size
    if size == 0:
        return 0
    with open(p, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        # find the last newline, reading back in chunks; everything after it is torn
        pos, keep, chunk = size, 0, 1 << 16
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            i = f.read(pos - start).rfind(b"\n")
            if i != -1:
                keep = start + i + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


class JsonlWriter:
    """Thread-safe appender: one line per record, flushed and fsynced before ``write`` returns.

    Opening it repairs a torn tail first (see ``repair_tail``).
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self._f = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: Any) -> None:
        line = dumps(record) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append(path: PathLike, records: Iterable[Any]) -> None:
    """Append records to ``path`` (created if missing), each line fsynced, a torn tail repaired first."""
    with JsonlWriter(path) as w:
        for record in records:
            w.write(record)


def read_lines(path: PathLike, *, repair: bool = False) -> Iterator[str]:
    """The non-blank lines of ``path`` (none if it is missing); ``repair`` cuts a torn tail on disk first."""
    p = Path(path)
    if not p.exists():
        return
    if repair:
        repair_tail(p)
    with open(p, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line.rstrip("\n")


def iter_lines(path: PathLike, *, repair: bool = False) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``path``; lines that do not parse (torn writes) or are not objects are skipped."""
    for line in read_lines(path, repair=repair):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


@contextmanager
def _replacing(path: PathLike) -> Iterator[TextIO]:
    """A text file that replaces ``path`` when the block ends cleanly (fsynced, then ``os.replace``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")  # beside it: os.replace is atomic only within one file system
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: a fsynced temporary file beside it, then ``os.replace``."""
    with _replacing(path) as f:
        f.write(text)


def rewrite(path: PathLike, records: Iterable[Any]) -> int:
    """Replace ``path`` with ``records``, one line each, atomically (streamed). Returns the lines written."""
    n = 0
    with _replacing(path) as f:
        for record in records:
            f.write(dumps(record) + "\n")
            n += 1
    return n
