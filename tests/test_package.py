"""The package surface: light import, curated exports, the CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tinyact
from tinyact.schema import SamplingParams, Trajectory

HEAVY = ["torch", "transformers", "vllm", "faiss", "trl", "sentence_transformers", "fastapi", "docker", "bm25s"]


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_tinyact_stays_light():
    code = (
        "import sys, json, tinyact, tinyact.cli, tinyact.schema, tinyact.models.engines; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert json.loads(_run(code)) == []


def test_import_from_the_repository_root_needs_no_flags():
    # The repository root is the package; nothing in it may shadow the standard library.
    root = Path(tinyact.__file__).parent
    shadowing = sorted(
        p.stem for p in root.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.stem in sys.stdlib_module_names
    )
    assert shadowing == []
    out = subprocess.run([sys.executable, "-c", "import types, tinyact; print(types.__file__)"],
                         capture_output=True, text=True, check=True, cwd=root).stdout
    assert str(root) not in out


def test_all_is_sorted_and_resolves():
    assert tinyact.__all__ == sorted(tinyact.__all__)
    for name in tinyact.__all__:
        assert getattr(tinyact, name) is not None
    with pytest.raises(AttributeError):
        tinyact.does_not_exist  # noqa: B018


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "tinyact.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("models", "chat", "sandbox", "index"):
        assert command in out.stdout


@pytest.mark.parametrize(
    "field,value,needle",
    [("temperature", -0.1, "temperature must be >= 0"), ("top_p", 0.0, "top_p must be in (0, 1]"),
     ("max_tokens", 0, "max_tokens must be >= 1")],
)
def test_sampling_params_validation_names_the_field(field, value, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace("]", r"\]")):
        SamplingParams(**{field: value})


def test_trajectory_jsonl_round_trip():
    t = Trajectory(task="2+2?", model="m", final_answer={"x": [1, 2]}, end_reason="final_answer")
    assert Trajectory.from_jsonl(t.to_jsonl()) == t


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_ships_the_files_the_code_reads(tmp_path):
    """A pip install (not a checkout) must carry the prompts, the viewer's static files and the sandbox
    image recipe: without build_image.sh a pip-installed tinyact could neither build the docker image
    nor check an image's recipe hash."""
    import hashlib
    import shutil
    import zipfile

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout: cannot list the files a wheel is built from")
    src = tmp_path / "src"
    for name in tracked.stdout.splitlines():
        if (REPO / name).is_file() and not name.startswith(("tests/", "docs/", "examples/", "bench/results/")):
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("tinyact-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        recipe = z.read("tinyact/sandbox/build_image.sh")
    assert hashlib.sha256(recipe).digest() == hashlib.sha256((REPO / "sandbox/build_image.sh").read_bytes()).digest()
    for path in ("tinyact/py.typed", "tinyact/agents/prompts/full_v2.txt", "tinyact/agents/prompts/short_v1.txt",
                 "tinyact/sandbox/worker/worker.py", "tinyact/serve/static/index.html"):
        assert path in names, path
    assert not any(n.startswith("tinyact/tests/") for n in names)
