"""Tools the model calls from its code: plain typed functions, described to the model
by their signature and docstring, validated with pydantic when called."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tinyact.errors import ConfigError

__all__ = ["RESERVED_NAMES", "Tool", "as_tools", "tool"]

RESERVED_NAMES = frozenset({"final_answer", "print"})


@dataclass
class Tool:
    """A host-side function that sandboxed code can call by name.

    Arguments are validated against the type hints (pydantic) before the
    function runs, so a model passing ``k="three"`` gets a clear error back.
    """

    fn: Callable[..., Any]
    name: str = ""
    description: str = ""
    _validated: Callable[..., Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigError(f"a tool must be callable, got {type(self.fn).__name__}")
        self.name = self.name or self.fn.__name__
        if not self.name.isidentifier():
            raise ConfigError(f"tool name must be a Python identifier, got {self.name!r}")
        if self.name in RESERVED_NAMES:
            raise ConfigError(f"tool name {self.name!r} is reserved")
        self.description = self.description or inspect.getdoc(self.fn) or ""
        if not self.description:
            raise ConfigError(f"tool {self.name!r} needs a docstring or a description: the model reads it")
        from pydantic import validate_call

        self._validated = validate_call(self.fn)

    @property
    def signature(self) -> str:
        try:
            sig = inspect.signature(self.fn)
        except (TypeError, ValueError):
            return f"{self.name}(*args, **kwargs)"
        text = str(sig).replace("'", "")
        return f"{self.name}{text}"

    def to_prompt(self) -> str:
        """How the tool is shown to the model: a Python stub with its docstring."""
        doc = "\n".join(f"    {line}" if line else "" for line in self.description.splitlines())
        return f'def {self.signature}:\n    """\n{doc}\n    """'

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        assert self._validated is not None
        return self._validated(*args, **kwargs)


def tool(fn: Callable[..., Any] | None = None, *, name: str = "", description: str = "") -> Any:
    """Decorator: ``@tool`` or ``@tool(name=..., description=...)`` makes a Tool."""
    if fn is None:
        return lambda f: Tool(f, name=name, description=description)
    return Tool(fn, name=name, description=description)


def as_tools(items: Iterable[Tool | Callable[..., Any]] | None) -> list[Tool]:
    tools = [t if isinstance(t, Tool) else Tool(t) for t in (items or [])]
    names = [t.name for t in tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"tool names must be unique, repeated: {', '.join(dupes)}")
    return tools
