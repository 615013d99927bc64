"""A scripted agent API server in its own process, for the restart and replica tests.

    python -m tests.serve.server --db runs.sqlite --port 8123 --gate-file open [--on-restart resume]
    python -m tests.serve.server --db postgresql://... --port 8124 --gate-file open --replica-id B

Task "slow" blocks in its second step inside the host tool ``gate()`` until the
gate file exists; its third step answers from a variable set in the first, so
a resumed run must have had its sandbox rebuilt. Task "relay" is the same, and
its first step prints ``who()``, the replica that executed it. With
``--call-log`` every engine call appends ``<replica> <task> <step>`` to that file.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tinyact.models.engines.scripted import act

SCRIPTS = {
    "quick": [act("final_answer(6 * 7)")],
    "slow": [act("x = 41\nprint(x)"), act("print(gate())"), act("final_answer(x + 1)")],
    "relay": [act("x = 41\nprint(who())"), act("print(gate())"), act("final_answer(x + 1)")],
    "hold": [act("print(gate())"), act("final_answer('through')")],
    "sleep": [act("import time\ntime.sleep(60)"), act("final_answer('woke')")],
    "remember": [act("x = 6 * 7\nprint(who())"), act("final_answer(x)")],
    "recall": [act("print(who())\nfinal_answer(x * 2)")],
}
REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gate-file", required=True)
    parser.add_argument("--on-restart", default="interrupt")
    parser.add_argument("--replica-id", default="")
    parser.add_argument("--lease-ttl", type=float, default=15.0)
    parser.add_argument("--max-active", type=int, default=4)
    parser.add_argument("--max-queued", type=int, default=16)
    parser.add_argument("--api-key", action="append", default=[])
    parser.add_argument("--call-log", default=None)
    args = parser.parse_args()

    import uvicorn

    from tinyact.models.engines.base import as_messages
    from tinyact.models.engines.scripted import ScriptedEngine
    from tinyact.serve import RunService, ServerConfig, create_app

    def gate() -> str:
        """Wait until the gate file exists."""
        while not os.path.exists(args.gate_file):
            time.sleep(0.05)
        return "open"

    def who() -> str:
        """The replica running this code."""
        return args.replica_id

    class Logged(ScriptedEngine):
        def generate(self, conversations, **kw):
            out = super().generate(conversations, **kw)
            if args.call_log:
                with open(args.call_log, "a") as f:
                    for conv in conversations:
                        msgs = as_messages(conv)
                        task = next(m.content for m in msgs if m.role == "user").removeprefix("New task:\n")
                        f.write(f"{args.replica_id} {task} {sum(m.role == 'assistant' for m in msgs)}\n")
            return out

    config = ServerConfig(db=args.db, on_restart=args.on_restart, exec_timeout=300, replica_id=args.replica_id,
                          lease_ttl=args.lease_ttl, poll_interval=0.1, max_active_per_key=args.max_active,
                          max_queued_per_key=args.max_queued, api_keys=tuple(args.api_key))
    service = RunService(Logged(SCRIPTS), tools=[gate, who], config=config)
    uvicorn.run(create_app(service), host="127.0.0.1", port=args.port, log_level="warning",
                timeout_graceful_shutdown=3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """This module's server in a subprocess (cwd ``folder``, outside the repository)."""

    def __init__(self, folder: Path, db: str, *args: str, key: str | None = None) -> None:
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "tests.serve.server", "--db", db, "--port", str(self.port),
               "--gate-file", str(folder / "gate"), *args]
        # ``tests`` is not installed; keep the caller's path (the ``tinyact`` under test) after it
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=self.url, timeout=30, headers=headers)

    def wait_ready(self) -> Server:
        import httpx

        from tests.serve.helpers import wait_for

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.stdout.read()}")
            try:
                return self.client.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=90)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


if __name__ == "__main__":
    main()
