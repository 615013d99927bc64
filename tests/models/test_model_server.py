"""serve-model: the server command line, readiness errors, and the CLI's one-line failures."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tinyact.errors import EngineError
from tinyact.models.server import ModelServer, server_command


def test_cpu_command_has_vllm_cpu_flags():
    cmd = server_command("/m", served_name="smol", host="127.0.0.1", port=8123, cpu=True,
                         lora_modules={"a": "/lora"})  # fmt: skip
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(cmd)
    for part in ("--model /m", "--served-model-name smol", "--port 8123", "--dtype float32", "--enforce-eager",
                 "--enable-prefix-caching", "--enable-lora", "--lora-modules a=/lora"):
        assert part in joined, part
    gpu = server_command("/m", served_name="smol", host="0.0.0.0", port=1, cpu=False)
    assert "--enforce-eager" not in gpu and "--dtype" not in gpu


def test_wait_ready_reports_an_exited_server_with_its_log(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("ValueError: no such model\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], start_new_session=True)
    server = ModelServer(proc, url="http://127.0.0.1:9/v1", model="x", log=log)
    with pytest.raises(EngineError, match=r"exited with code 3(.|\n)*no such model"):
        server.wait_ready(timeout=30, poll=0.1)
    server.stop()


def test_serve_model_unknown_name_fails_in_one_line():
    from tinyact.cli import app

    result = CliRunner().invoke(app, ["serve-model", "no-such-model"])
    assert result.exit_code == 1
    assert "unknown model 'no-such-model'" in result.output
