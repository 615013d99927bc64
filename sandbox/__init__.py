"""Isolated, persistent, forkable Python execution for code actions.

    from tinyact.sandbox import open_session, Limits

    with open_session(limits=Limits(timeout_s=5), tools={"search": search}) as s:
        s.execute("x = search('q', k=3)")
        forks = [s.fork() for _ in range(8)]

Backends: "process" (a fork-server worker isolated by bwrap > unshare > none)
and "docker" (the same worker in a locked-down container). See DESIGN.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from tinyact.errors import SandboxError, SandboxErrorCode
from tinyact.sandbox.limits import Limits
from tinyact.sandbox.session import Session

__all__ = ["Limits", "Session", "available_backends", "open_session"]

Backend = Literal["auto", "process", "docker"]
IsolationName = Literal["auto", "bwrap", "unshare", "none"]


def open_session(
    backend: Backend = "auto",
    limits: Limits | None = None,
    tools: Mapping[str, Callable[..., Any]] | None = None,
    *,
    isolation: IsolationName = "auto",
    allow_unsafe: bool = False,
    image: str | None = None,
    reusable: bool = False,
) -> Session:
    """Start a sandbox and return its first session.

    backend: "process" (default for "auto") or "docker".
    isolation: process backend only; "auto" picks the strongest that works
        (bwrap > unshare > none). "none" is refused unless allow_unsafe=True.
    tools: host-side callables the code can call by name; arguments and results
        travel as JSON. final_answer() is always there.
    image: docker backend only; defaults to the image `tinyact sandbox image` builds.
    reusable: process backend with bwrap or unshare only: a sandbox whose first
        session is a template that runs no code; its forks serve one run each and
        ``Session.reset()`` on the template puts the sandbox back as it started
        (every other process killed, writable files and IPC objects wiped, see
        ``worker/reset.py``), so that it can serve another run. Off by default:
        a fresh sandbox per run isolates more (a uid and namespaces of its own).
    """
    limits = limits or Limits()
    tools = dict(tools or {})
    for name, fn in tools.items():
        if not name.isidentifier() or name in ("final_answer", "ToolError"):
            raise ValueError(f"tool name must be an identifier other than final_answer/ToolError, got {name!r}")
        if not callable(fn):
            raise TypeError(f"tool {name!r} is not callable")
    if backend in ("auto", "process"):
        from tinyact.sandbox.process import start_process_session

        return start_process_session(isolation=isolation, limits=limits, tools=tools, allow_unsafe=allow_unsafe,
                                     reusable=reusable)
    if reusable:
        raise SandboxError("only the process backend makes reusable sandboxes",
                           code=SandboxErrorCode.BACKEND_UNAVAILABLE)
    if backend == "docker":
        from tinyact.sandbox.docker import start_docker_session

        return start_docker_session(limits=limits, tools=tools, image=image)
    raise SandboxError(
        f"unknown sandbox backend {backend!r}; use auto, process or docker",
        code=SandboxErrorCode.BACKEND_UNAVAILABLE,
    )


def available_backends() -> list[str]:
    """Backends that can start here ("process" always; "docker" with an engine and the image)."""
    out = ["process"]
    try:
        from tinyact.sandbox.docker import docker_available

        if docker_available()[0]:
            out.append("docker")
    except Exception:  # noqa: BLE001
        pass
    return out
