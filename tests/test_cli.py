"""The `tinyact` command as scripts and users meet it: piped listings, --json, and
expected failures (a missing extra, a missing file, an unreachable server) as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HIDER = '''
import os, sys
class _Hide:  # the modules in $HIDE_MODULES import as if they were not installed
    hidden = set(filter(None, os.environ.get("HIDE_MODULES", "").split(",")))
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Hide())
'''


def tinyact(*args: str, hide: str = "", tmp: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real entry point in a subprocess, stdout a pipe (not a terminal)."""
    env = dict(os.environ)
    if hide:
        assert tmp is not None
        (tmp / "sitecustomize.py").write_text(HIDER)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp), env.get("PYTHONPATH", "")) if p)
        env["HIDE_MODULES"] = hide
    code = "import sys; from tinyact.cli import main; sys.argv[0] = 'tinyact'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_piped_models_list_is_plain_and_untruncated():
    from tinyact.models.catalog import CATALOG

    r = tinyact("models", "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split("\t") == ["name", "role", "download_mb", "prepared", "size_mb", "gguf_prepared", "path"]
    assert [line.split("\t")[0] for line in lines[1:]] == list(CATALOG)  # whole names, no "…"
    assert "…" not in r.stdout and "─" not in r.stdout  # no table drawing either


def test_models_list_json():
    from tinyact.models.catalog import CATALOG, is_prepared

    r = tinyact("models", "list", "--json")
    assert r.returncode == 0, r.stderr
    records = json.loads(r.stdout)
    assert [x["name"] for x in records] == list(CATALOG)
    assert all(x["prepared"] == is_prepared(x["name"]) for x in records)
    assert all((x["path"] is not None) == x["prepared"] for x in records)


def test_eval_list_json(tmp_path):
    r = tinyact("eval", "list", "--json", "--data-dir", str(tmp_path))  # an empty folder: sizes unknown
    assert r.returncode == 0, r.stderr
    records = {x["name"]: x for x in json.loads(r.stdout)}
    assert records["gsm-hard"]["kind"] == "math" and records["gsm-hard"]["splits"] == {"test": None}
    assert records["hotpotqa-distractor"]["corpus"] is True


@pytest.mark.parametrize(
    ("hide", "args", "expected"),
    [
        ("uvicorn", ["serve", "--port", "1"], "needs the 'uvicorn' package, which is not installed: "
                                              "pip install 'tinyact[serve]'"),
        ("transformers", ["chat", "hi", "--model", "smollm2-135m", "--engine", "transformers"], "pip install 'tinyact[models]'"),
        ("transformers", ["run", "hi", "--model", "smollm2-135m", "--engine", "transformers"], "pip install 'tinyact[models]'"),
    ],
)
def test_a_missing_extra_is_one_line(tmp_path, hide, args, expected):
    line = one_error_line(tinyact(*args, hide=hide, tmp=tmp_path))
    assert expected in line


def test_a_missing_file_and_an_unreachable_server_are_one_line(tmp_path):
    line = one_error_line(tinyact("distill", "all", str(tmp_path / "gone.yaml")))
    assert "gone.yaml" in line
    line = one_error_line(tinyact("view", str(tmp_path / "gone.jsonl")))
    assert "no such trajectories file" in line
    line = one_error_line(tinyact("chat", "hi", "--engine", "openai", "--model", "http://127.0.0.1:9/v1"))
    assert "cannot reach" in line and "127.0.0.1:9" in line


def test_fail_keeps_brackets(capsys):
    from tinyact.console import fail

    fail("pip install 'tinyact[serve]'")
    assert "tinyact[serve]" in capsys.readouterr().err
