"""Corpus readers: wiki-18 JSONL, HotpotQA records, `{"title","text"}` JSONL.

Every reader streams: it holds one line at a time (HotpotQA keeps the set of
titles it has seen, to de-duplicate), so a 21M-passage wiki-18 file never has to
fit in memory.

    wiki18    {"id": "0", "contents": "\\"Title\\"\\ntext"}        (Search-R1, FlashRAG)
    hotpotqa  {"context": {"title": [...], "sentences": [[...]]}, ...}
              or the original list form {"context": [[title, [sentences]], ...]}
    jsonl     {"title": ..., "text": ..., "id": optional}
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from tinyact.errors import ConfigError, RetrievalError
from tinyact.tools.retrieval.base import Document

CorpusFormat = Literal["auto", "wiki18", "hotpotqa", "jsonl"]
FORMATS: tuple[str, ...] = ("auto", "wiki18", "hotpotqa", "jsonl")
OnError = Literal["fail", "skip"]


class CorpusLineWarning(UserWarning):
    """A broken corpus line was skipped (on_error="skip")."""


def corpus_files(path: str | Path | Iterable[str | Path]) -> list[Path]:
    """A file, a folder (its *.jsonl, sorted) or a list of files -> the files to read."""
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.glob("*.jsonl"))
            if not found:
                raise RetrievalError(f"corpus folder {p} holds no *.jsonl file")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise RetrievalError(f"corpus file not found: {p}")
    if not files:
        raise RetrievalError("no corpus file given")
    return files


def detect_format(record: dict[str, Any]) -> str:
    """Which reader a first record belongs to."""
    if "contents" in record:
        return "wiki18"
    if "context" in record:
        return "hotpotqa"
    if "text" in record:
        return "jsonl"
    raise RetrievalError(
        f"cannot tell the corpus format from keys {sorted(record)[:8]}: expected 'contents' "
        "(wiki-18), 'context' (HotpotQA) or 'title'/'text'"
    )


def read_corpus(
    path: str | Path | Iterable[str | Path],
    format: CorpusFormat = "auto",
    on_error: OnError = "fail",
) -> Iterator[Document]:
    """Stream the Documents of a corpus file, folder or list of files.

    A line that is not valid JSON or lacks the format's fields raises
    RetrievalError naming the file and line number (on_error="fail"), or is
    skipped with a CorpusLineWarning saying the same (on_error="skip").
    """
    if format not in FORMATS:
        raise ConfigError(f"format: must be one of {', '.join(FORMATS)}; got {format!r}")
    if on_error not in ("fail", "skip"):
        raise ConfigError(f"on_error: must be 'fail' or 'skip'; got {on_error!r}")
    files = corpus_files(path)  # checked eagerly, before the first next()
    return _read(files, format, on_error)


def _read(files: list[Path], format: str, on_error: str) -> Iterator[Document]:
    seen_titles: set[str] = set()  # HotpotQA: one passage per title across files
    auto_ids = 0
    for file in files:
        fmt = format
        with file.open("r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
                    if fmt == "auto":
                        fmt = detect_format(record)
                    docs = list(_parse(fmt, record, auto_ids, seen_titles))
                except (ValueError, KeyError, TypeError, IndexError, RetrievalError) as e:
                    message = f"{file}:{lineno}: broken {fmt if fmt != 'auto' else 'corpus'} line: {_reason(e)}"
                    if on_error == "fail":
                        raise RetrievalError(message) from e
                    warnings.warn(message + " (skipped)", CorpusLineWarning, stacklevel=2)
                    continue
                auto_ids += len(docs)
                yield from docs


def _reason(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"missing field {e}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _parse(fmt: str, record: dict[str, Any], next_id: int, seen: set[str]) -> Iterator[Document]:
    if fmt == "wiki18":
        contents = record["contents"]
        if not isinstance(contents, str):
            raise TypeError("'contents' must be a string")
        yield Document.from_contents(str(record.get("id", next_id)), contents)
    elif fmt == "jsonl":
        text = record["text"]
        if not isinstance(text, str):
            raise TypeError("'text' must be a string")
        yield Document(id=str(record.get("id", next_id)), title=str(record.get("title", "")), text=text)
    elif fmt == "hotpotqa":
        n = next_id
        for title, sentences in _hotpot_context(record["context"]):
            if title in seen:
                continue
            seen.add(title)
            yield Document(id=str(n), title=title, text="".join(sentences).strip())
            n += 1
    else:  # pragma: no cover - guarded by read_corpus
        raise ConfigError(f"format: unknown {fmt!r}")


def _hotpot_context(context: Any) -> Iterator[tuple[str, list[str]]]:
    if isinstance(context, dict):  # the HF datasets form
        titles, sentences = context["title"], context["sentences"]
        if len(titles) != len(sentences):
            raise ValueError("context.title and context.sentences differ in length")
        yield from zip(titles, sentences, strict=True)
    elif isinstance(context, list):  # the original HotpotQA form
        for title, sentences in context:
            yield title, sentences
    else:
        raise TypeError("'context' must be an object or a list")


__all__ = ["FORMATS", "CorpusFormat", "CorpusLineWarning", "OnError", "corpus_files", "detect_format", "read_corpus"]
