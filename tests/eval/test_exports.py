"""The public API of tinyact.eval: curated, sorted, light to import."""

from __future__ import annotations

import subprocess
import sys

import tinyact.eval as ev


def test_all_is_sorted_and_complete():
    assert ev.__all__ == sorted(ev.__all__)
    for name in ev.__all__:
        assert hasattr(ev, name), name
    public = {n for n in dir(ev) if not n.startswith("_") and not isinstance(getattr(ev, n), type(ev))}
    public -= {"annotations"}
    assert public == set(ev.__all__)


def test_import_is_light():
    code = (
        "import sys, tinyact.eval; "
        "heavy = [m for m in ('sympy', 'matplotlib', 'httpx', 'math_verify', 'torch') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"
