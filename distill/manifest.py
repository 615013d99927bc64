"""Manifests: what a trajectories or SFT file holds, small enough to commit while the data stays out of git.

Each data file the pipeline writes (``trajectories.jsonl``, ``kept.jsonl``,
``sft.jsonl``) gets ``<file>.manifest.json`` beside it: the file's sha256,
size and line count, counts (done, solved, kept, rejected, examples), the
teacher and its settings, the prompt versions seen, and a hash of the
question set, so a result can be traced to exactly the data it was trained on.
With ``manifest_dir`` set in the config, a copy goes there too (a folder in git).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["file_digest", "questions_digest", "read_manifest", "write_manifest"]


def file_digest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """sha256, bytes and lines of a file."""
    h, size, lines = hashlib.sha256(), 0, 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    return {"sha256": h.hexdigest(), "bytes": size, "lines": lines}


def questions_digest(questions: Iterable[Any]) -> dict[str, Any]:
    """Count and sha256 of the question set (sorted ``id<TAB>question`` lines), and its sources."""
    qs = list(questions)
    text = "\n".join(sorted(f"{q.id}\t{q.question}" for q in qs))
    sources: dict[str, int] = {}
    for q in qs:
        src = str(q.metadata.get("source", ""))
        sources[src] = sources.get(src, 0) + 1
    return {"count": len(qs), "sha256": hashlib.sha256(text.encode()).hexdigest(), "sources": sources}


def _settings(config: Any) -> dict[str, Any]:
    keys = ("teacher", "teacher_engine", "teacher_engine_kwargs", "student", "use_prefix", "prefix_max_tokens",
            "teacher_prompt", "student_prompt", "max_steps", "max_tokens", "exec_timeout", "temperature",
            "batch_size", "keep_recovered_errors", "retrieval_index")
    out = {k: getattr(config, k) for k in keys}
    out["tasks"] = [dict(t.__dict__) for t in config.tasks]
    return out


def write_manifest(
    data_path: str | os.PathLike[str],
    kind: str,
    config: Any,
    counts: dict[str, Any],
    *,
    questions: Sequence[Any] | None = None,
    extra: dict[str, Any] | None = None,
    copy_to: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``<data_path>.manifest.json`` (and a copy in ``copy_to``); returns its path."""
    from tinyact import __version__

    data = Path(data_path)
    manifest = {
        "file": data.name,
        "kind": kind,
        **file_digest(data),
        "counts": counts,
        "settings": _settings(config),
        "questions": questions_digest(questions) if questions is not None else None,
        **(extra or {}),
        "tinyact": __version__,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(manifest, indent=2, default=str) + "\n"
    out = data.with_name(data.name + ".manifest.json")
    out.write_text(text, encoding="utf-8")
    if copy_to is not None:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        (Path(copy_to) / out.name).write_text(text, encoding="utf-8")
    return out


def read_manifest(data_path: str | os.PathLike[str]) -> dict[str, Any]:
    data = Path(data_path)
    return json.loads(data.with_name(data.name + ".manifest.json").read_text(encoding="utf-8"))
