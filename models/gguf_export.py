"""Export a Hugging Face model folder (a merged student, say) to GGUF, for the llama.cpp engine.

Maintained tooling only: llama.cpp's own ``convert_hf_to_gguf.py`` writes an f16
GGUF (it is not in any wheel, so it is taken from the llama-cpp-python sdist of
the installed version, fetched once with ``pip download --no-binary``, with the
``gguf-py`` it ships: PyPI's ``gguf`` 0.19.0 lacks what the converter uses),
then ``llama_model_quantize`` from the installed llama.cpp library quantizes it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from tinyact.errors import ConfigError, DownloadError, ModelError

__all__ = ["QUANTS", "converter_dir", "export_gguf"]

QUANTS = ("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_1", "q4_0")
"""Output types: f16 as converted, or one of llama.cpp's quantizations of it."""


def converter_dir() -> Path:
    """A folder with llama.cpp's ``convert_hf_to_gguf.py`` (its ``conversion`` package, its ``gguf-py``), for the installed version."""
    from importlib.metadata import PackageNotFoundError, version

    from tinyact.models.catalog import tinyact_home

    try:
        ver = version("llama-cpp-python")
    except PackageNotFoundError:
        raise ImportError("GGUF export needs llama-cpp-python: pip install 'tinyact[llamacpp]'") from None
    dest = tinyact_home() / "llama.cpp-convert" / ver
    if (dest / "convert_hf_to_gguf.py").is_file():
        return dest
    downloads = tinyact_home() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    sdist = downloads / f"llama_cpp_python-{ver}.tar.gz"
    if not sdist.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(downloads), f"llama-cpp-python=={ver}"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if not sdist.is_file():
            raise DownloadError(f"could not download the llama-cpp-python {ver} sdist: {proc.stderr.strip()[-300:]}")
    tmp = dest.with_name(f".{ver}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    root = f"llama_cpp_python-{ver}/vendor/llama.cpp/"
    try:
        with tarfile.open(sdist) as tar:
            for m in tar.getmembers():
                name = m.name[len(root):] if m.name.startswith(root) else None
                if m.isfile() and name and (name == "convert_hf_to_gguf.py" or name.startswith(("conversion/", "gguf-py/gguf/"))):
                    target = tmp / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(m) as src, open(target, "wb") as dst:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, dst)
        if not (tmp / "convert_hf_to_gguf.py").is_file():
            raise ModelError(f"{sdist.name} holds no vendor/llama.cpp/convert_hf_to_gguf.py")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def export_gguf(folder: str | os.PathLike[str], out: str | os.PathLike[str], quant: str = "q4_k_m") -> Path:
    """Write ``folder`` (a Hugging Face causal-LM folder) as a GGUF file ``out`` of type ``quant``.

    Raises:
        ConfigError: an unknown ``quant``, or ``folder`` is not a model folder.
        ModelError: the conversion or the quantization failed (the message ends with the converter's output).
    """
    quant = quant.lower()
    if quant not in QUANTS:
        raise ConfigError(f"quant must be one of {', '.join(QUANTS)}, got {quant!r}")
    src = Path(folder)
    if not (src / "config.json").is_file():
        raise ConfigError(f"{src} is not a Hugging Face model folder (no config.json)")
    dst = Path(out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    f16 = dst.with_name(f".{dst.name}.f16-{os.getpid()}")
    try:
        script = converter_dir() / "convert_hf_to_gguf.py"
        proc = subprocess.run([sys.executable, str(script), str(src), "--outfile", str(f16), "--outtype", "f16"],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0 or not f16.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise ModelError(f"convert_hf_to_gguf.py failed on {src} (exit {proc.returncode}):\n{tail}")
        if quant == "f16":
            f16.rename(dst)
            return dst
        _quantize(f16, dst, quant)
        return dst
    finally:
        f16.unlink(missing_ok=True)


def _quantize(src: Path, dst: Path, quant: str) -> None:
    from tinyact.models.engines.llamacpp_lib import default_threads, load_library

    llama = load_library()
    params = llama.llama_model_quantize_default_params()
    params.ftype = getattr(llama, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}")
    params.nthread = default_threads()
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        code = llama.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if code != 0:
            raise ModelError(f"llama_model_quantize to {quant} failed with code {code}")
        tmp.rename(dst)
    finally:
        tmp.unlink(missing_ok=True)
