"""Student variants: several students (catalog models) trained on several data sets (agent trajectories or
CoT answers) from one work folder, each in its own ``students/<student>-<data>/`` folder.

Without a student or data choice the variant is the work folder's default layout (``adapter/``,
``checkpoints/``, ``merged/``, ``eval/`` in the workdir, trained on ``sft.jsonl``), exactly as before
variants existed. With either, everything a train/export/eval writes goes under
``workdir/students/<student>-<data>/``, so the paper's rows (agent-distilled, CoT-distilled, per student
size) live side by side.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyact.errors import ConfigError

__all__ = ["DATA_SETS", "Variant", "folder_name", "resolve_variant", "write_train_manifest"]

DATA_SETS = {"agent": "sft", "cot": "sft_cot"}
"""``--data`` choice -> the ``DistillConfig.paths`` key of its SFT file."""

_MAKES = {
    "agent": "tinyact distill sft-data {config}",
    "cot": "tinyact distill cot {config} && tinyact distill sft-data {config} --data cot",
}


def folder_name(student: str) -> str:
    """A folder-safe name for a student: a catalog name as is; a path's last part; other characters -> ``_``."""
    s = student.rstrip("/\\")
    if "/" in s and Path(s).expanduser().exists():  # a local model folder: its own name
        s = Path(s).name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "student"


@dataclass(frozen=True)
class Variant:
    """Where one student variant reads its training data and writes its outputs."""

    student: str
    """Catalog name, folder or hub id of the base model."""
    data: str
    """``agent`` (``sft.jsonl``) or ``cot`` (``sft-cot.jsonl``)."""
    name: str | None
    """``<student>-<data>``, or None for the work folder's default layout."""
    folder: Path
    """The variant's folder (the workdir itself for the default)."""
    train_file: Path
    adapter: Path
    checkpoints: Path
    merged: Path
    eval: Path

    @property
    def options(self) -> str:
        """The command-line options that select this variant ("" for the default layout)."""
        return "" if self.name is None else f" --student {self.student} --data {self.data}"

    @property
    def manifest(self) -> Path:
        return self.folder / "train-manifest.json"

    def check_train_file(self, config_path: str = "CONFIG") -> None:
        """Raise ConfigError (one line naming the file and the command that makes it) when it is missing."""
        if not self.train_file.is_file():
            make = _MAKES[self.data].format(config=config_path)
            raise ConfigError(f"no {self.data} SFT data: {self.train_file} does not exist (make it with `{make}`)")


def resolve_variant(config: Any, student: str | None = None, data: str | None = None) -> Variant:
    """The variant of ``config`` (a ``DistillConfig``) for ``student`` / ``data``; both None: the default layout.

    Raises:
        ConfigError: ``data`` is not one of ``DATA_SETS``.
    """
    if data is not None and data not in DATA_SETS:
        raise ConfigError(f"--data must be one of {', '.join(DATA_SETS)}, got {data!r}")
    paths = config.paths
    chosen_student, chosen_data = student or config.student, data or "agent"
    train_file = paths[DATA_SETS[chosen_data]]
    if student is None and data is None:
        return Variant(chosen_student, chosen_data, None, Path(config.workdir), train_file, paths["adapter"],
                       paths["checkpoints"], paths["merged"], paths["eval"])
    name = f"{folder_name(chosen_student)}-{chosen_data}"
    folder = Path(config.workdir) / "students" / name
    return Variant(chosen_student, chosen_data, name, folder, train_file, folder / "adapter", folder / "checkpoints",
                   folder / "merged", folder / "eval")


def write_train_manifest(variant: Variant, config: Any, result: dict[str, Any]) -> Path:
    """``train-manifest.json`` in the variant's folder (and ``<student>-<data>-train.json`` in
    ``config.manifest_dir`` when set): student, data file digest, examples, settings, first/last loss, seconds."""
    import time
    from dataclasses import asdict

    from tinyact import __version__
    from tinyact.distill.manifest import file_digest

    losses = result.get("losses") or []
    manifest = {
        "kind": "student-training",
        "student": variant.student,
        "data": variant.data,
        "variant": variant.name,
        "data_file": variant.train_file.name,
        "data_sha256": file_digest(variant.train_file)["sha256"],
        "examples": result.get("examples"),
        "steps": result.get("steps"),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "seconds": result.get("seconds"),
        "resumed_from": result.get("resumed_from"),
        "adapter": str(variant.adapter),
        "settings": asdict(config.train),
        "student_prompt": config.student_prompt,
        "tinyact": __version__,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(manifest, indent=2, default=str) + "\n"
    variant.folder.mkdir(parents=True, exist_ok=True)
    variant.manifest.write_text(text, encoding="utf-8")
    if config.manifest_dir:
        out = Path(config.manifest_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{folder_name(variant.student)}-{variant.data}-train.json").write_text(text, encoding="utf-8")
    return variant.manifest
