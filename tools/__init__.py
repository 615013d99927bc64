"""Tools agents call from their code: user functions, retrieval."""

from tinyact.tools.base import Tool, as_tools, tool

__all__ = ["Tool", "as_tools", "tool"]
