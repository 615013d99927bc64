"""tinyact's exceptions: one root, a few branches.

    TinyactError
    ├── ConfigError            bad settings or arguments (a user can fix them)
    ├── ModelError             the model catalog or an engine failed
    │   ├── UnknownModelError  a name that is neither in the catalog nor a folder
    │   ├── ChecksumError      a downloaded file does not match its pinned sha256
    │   └── DownloadError      the package index could not be reached / answered
    ├── EngineError            generation failed (server down, too few choices, ...)
    ├── ReplayError            a ReplayEngine got a call its script does not match
    ├── SandboxError           the sandbox itself failed (not the code inside it)
    └── RetrievalError         an index or corpus is missing or malformed

Errors caused by what the *model* wrote (a parse failure, an exception in its
code, a timeout) are not exceptions: they become observations and the loop goes
on. Exceptions never log; whoever catches them decides.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = [
    "ChecksumError",
    "ConfigError",
    "DownloadError",
    "EngineError",
    "ModelError",
    "ReplayError",
    "RetrievalError",
    "SandboxError",
    "SandboxErrorCode",
    "TinyactError",
    "UnknownModelError",
]


class TinyactError(Exception):
    """Root of every error tinyact raises on purpose."""


class ConfigError(TinyactError, ValueError):
    """A setting or argument is invalid; the message names it and the allowed values."""


class ModelError(TinyactError):
    """The model catalog or loading a model failed."""


class UnknownModelError(ModelError, KeyError):
    """A model name that is neither a catalog entry nor an existing folder."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ChecksumError(ModelError):
    """A downloaded or assembled file does not match its pinned sha256."""


class DownloadError(ModelError):
    """The package index could not be reached, or refused the request."""


class EngineError(TinyactError):
    """An engine could not produce completions (server down, bad reply, ...)."""


class ReplayError(EngineError):
    """A ReplayEngine was called when its script did not expect it, or not consumed."""


class SandboxErrorCode(str, Enum):
    WORKER_DIED = "worker_died"
    START_FAILED = "start_failed"
    NO_ISOLATION = "no_isolation"
    CLOSED = "closed"
    PROTOCOL = "protocol"
    BACKEND_UNAVAILABLE = "backend_unavailable"


class SandboxError(TinyactError):
    """The sandbox failed (not the code in it, whose errors are in ExecResult)."""

    def __init__(
        self,
        message: str,
        *,
        code: SandboxErrorCode = SandboxErrorCode.PROTOCOL,
        retryable: bool = False,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.context = context or {}


class RetrievalError(TinyactError):
    """An index or corpus is missing, malformed, or was built differently."""
