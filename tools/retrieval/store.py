"""The document store of an index: random access by row and by id, memory-mapped.

    docs.jsonl    one {"id","title","text"} object per row, in index order
    offsets.npy   int64[n + 1]: byte offset of each row in docs.jsonl (memory-mapped)
    ids.txt       the ids, one a line; only read when ids are not simply "0".."n-1"
    titles.txt    the titles, one a line (for title links)
"""

from __future__ import annotations

import hashlib
import json
import mmap
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from tinyact.errors import RetrievalError
from tinyact.tools.retrieval.base import Document

DOCS, OFFSETS, IDS, TITLES = "docs.jsonl", "offsets.npy", "ids.txt", "titles.txt"


class StoreWriter:
    """Appends documents to a store folder; `close()` returns (count, sha256, ids_are_rows)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._docs = (folder / DOCS).open("wb")
        self._ids = (folder / IDS).open("w", encoding="utf-8")
        self._titles = (folder / TITLES).open("w", encoding="utf-8")
        self._offsets: list[int] = [0]
        self._sha = hashlib.sha256()
        self._ids_are_rows = True
        self._seen: set[str] = set()

    def add(self, doc: Document) -> None:
        if "\n" in doc.id:
            raise RetrievalError(f"document id {doc.id!r} contains a newline")
        row = len(self._offsets) - 1
        if self._ids_are_rows and doc.id != str(row):
            # ids so far were "0".."row-1"; only now does a set of them pay for itself
            self._ids_are_rows = False
            self._seen = {str(i) for i in range(row)}
        if not self._ids_are_rows:
            if doc.id in self._seen:
                raise RetrievalError(f"duplicate document id {doc.id!r} (row {row})")
            self._seen.add(doc.id)
        line = json.dumps({"id": doc.id, "title": doc.title, "text": doc.text}, ensure_ascii=False)
        data = line.encode("utf-8") + b"\n"
        self._docs.write(data)
        self._sha.update(data)
        self._ids.write(doc.id + "\n")
        self._titles.write(" ".join(doc.title.splitlines()) + "\n")
        self._offsets.append(self._offsets[-1] + len(data))

    def extend(self, docs: Iterable[Document]) -> None:
        for doc in docs:
            self.add(doc)

    def close(self) -> tuple[int, str, bool]:
        self._docs.close()
        self._ids.close()
        self._titles.close()
        np.save(self.folder / OFFSETS, np.asarray(self._offsets, dtype=np.int64))
        self._seen.clear()
        return len(self._offsets) - 1, self._sha.hexdigest(), self._ids_are_rows


class DocStore:
    """Read-only access to a store folder; rows are 0-based positions in the index."""

    def __init__(self, folder: Path, ids_are_rows: bool) -> None:
        self.folder = folder
        try:
            self._offsets = np.load(folder / OFFSETS, mmap_mode="r")
            self._file = (folder / DOCS).open("rb")
        except FileNotFoundError as e:
            raise RetrievalError(f"index document store is incomplete: {e.filename} is missing") from e
        size = (folder / DOCS).stat().st_size
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        self._ids_are_rows = ids_are_rows
        self._row_of: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def row(self, i: int) -> Document:
        if not 0 <= i < len(self) or self._map is None:
            raise IndexError(f"row {i} out of range (0..{len(self) - 1})")
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        obj = json.loads(self._map[start:end])
        return Document(id=obj["id"], title=obj["title"], text=obj["text"])

    def row_of(self, doc_id: str) -> int:
        if self._ids_are_rows:
            if doc_id.isdigit() and str(int(doc_id)) == doc_id and int(doc_id) < len(self):
                return int(doc_id)
            raise KeyError(doc_id)
        if self._row_of is None:
            with (self.folder / IDS).open(encoding="utf-8") as f:
                self._row_of = {line.rstrip("\n"): n for n, line in enumerate(f)}
        return self._row_of[doc_id]

    def titles(self) -> Iterator[str]:
        """Every row's title, in order (from titles.txt, else from the documents)."""
        path = self.folder / TITLES
        if path.is_file():
            with path.open(encoding="utf-8") as f:
                for line in f:
                    yield line.rstrip("\n")
        else:
            for doc in self:
                yield doc.title

    def get(self, doc_id: str) -> Document:
        """The document with this id; KeyError when there is none."""
        return self.row(self.row_of(doc_id))

    def __iter__(self) -> Iterator[Document]:
        for i in range(len(self)):
            yield self.row(i)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        self._file.close()


__all__ = ["DocStore", "StoreWriter"]
