"""Resource limits of a sandbox session."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tinyact.errors import ConfigError

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """What one session's code may use. Enforced by setrlimit in the worker, a
    wall-clock kill from outside the executing process, and (docker) cgroups.

    ``Limits(memory_mb=256, timeout_s=5)``
    """

    memory_mb: int = 512
    """Address space of each sandboxed process (RLIMIT_AS), in MiB; a container's memory limit."""
    cpu_s: int = 30
    """CPU seconds one execute may burn (RLIMIT_CPU, per process); SIGXCPU ends it."""
    timeout_s: float = 10.0
    """Default wall-clock limit of one execute, in seconds; ``execute(timeout=...)`` overrides it."""
    file_size_mb: int = 64
    """Largest file the code may write (RLIMIT_FSIZE), in MiB."""
    scratch_mb: int = 256
    """Size of the scratch file system (a tmpfs under bwrap and docker), in MiB."""
    open_files: int = 256
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    processes: int = 64
    """Processes and threads of the sandbox user (RLIMIT_NPROC; pids limit in docker)."""
    output_bytes: int = 64_000
    """stdout and stderr are each cut at this many bytes, with a marker appended."""

    def __post_init__(self) -> None:
        minimum = {
            "memory_mb": 64,
            "cpu_s": 1,
            "file_size_mb": 1,
            "scratch_mb": 1,
            "open_files": 16,
            "processes": 8,
            "output_bytes": 256,
        }
        for name, low in minimum.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{name} must be an int, got {value!r}")
            if value < low:
                raise ConfigError(f"{name} must be >= {low}, got {value}")
        if not isinstance(self.timeout_s, (int, float)) or not self.timeout_s > 0:
            raise ConfigError(f"timeout_s must be > 0, got {self.timeout_s!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
