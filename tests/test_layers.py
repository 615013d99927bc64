"""The house in layers: every import between rooms points to the same layer or a lower one.

The rooms and their layers are ARCHITECTURE.md's diagram. The test reads every
module of the package with ``ast`` (imports inside functions count too: a lazy
import is still a dependency) and fails on an upward import or on a cycle
between rooms, naming the file and line.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import tinyact

ROOT = Path(tinyact.__file__).resolve().parent

LAYERS: dict[str, int] = {
    "schema": 0, "errors": 0, "jsonl": 0, "console": 0,
    "sandbox": 1, "models": 1,
    "tools": 2,
    "agents": 3,
    "eval": 4, "distill": 4, "serve": 4,
    "cli": 5, "bench": 5,
}
NOT_PACKAGE = {"tests", ".venv", "build", "docs", "examples"}


def _package_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in NOT_PACKAGE or rel.parts[0].startswith("."):
            continue
        files.append(path)
    return sorted(files)


def _room(rel: Path) -> str | None:
    """The room a file lives in (``None`` for the package's own ``__init__``, the lazy facade)."""
    if rel == Path("__init__.py"):
        return None
    return rel.parts[0].removesuffix(".py")


def _imported_rooms(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "tinyact" and len(parts) > 1:
                out.append((parts[1], node.lineno))
    return out


def _edges() -> list[tuple[str, str, str]]:
    edges = []
    for path in _package_files():
        rel = path.relative_to(ROOT)
        room = _room(rel)
        if room is None:
            continue
        for target, line in _imported_rooms(path):
            if target != room:
                edges.append((room, target, f"{rel}:{line}"))
    return edges


def test_every_room_has_a_layer():
    rooms = {_room(p.relative_to(ROOT)) for p in _package_files()} - {None}
    assert sorted(rooms - set(LAYERS)) == [], "a new room needs a layer here and in ARCHITECTURE.md"


def test_no_import_points_up():
    upward = [
        f"{where}: {src} (layer {LAYERS[src]}) imports {dst} (layer {LAYERS[dst]})"
        for src, dst, where in _edges()
        if dst in LAYERS and LAYERS[dst] > LAYERS[src]
    ]
    assert upward == []


def test_no_cycle_between_rooms():
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst, _ in _edges():
        graph[src].add(dst)
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in stack:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif len(stack) < len(LAYERS):
                visit(nxt, [*stack, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []


@pytest.mark.parametrize("bad", ["from tinyact.serve import x", "import tinyact.agents.agent"])
def test_the_walk_sees_upward_imports(tmp_path, bad):
    # The checker itself can fail: a models/ file importing a higher room is caught.
    f = tmp_path / "m.py"
    f.write_text(f"def lazy():\n    {bad}\n")
    (room, line), = _imported_rooms(f)
    assert LAYERS[room] > LAYERS["models"] and line == 2
