"""A scripted agent API server in its own process, for the restart tests.

    python -m tests.serve.server --db runs.sqlite --port 8123 --gate-file open [--on-restart resume]

Task "slow" blocks in its second step inside the host tool ``gate()`` until the
gate file exists; its third step answers from a variable set in the first, so
a resumed run must have had its sandbox rebuilt.
"""

from __future__ import annotations

import argparse
import os
import time

from tinyact.models.engines.scripted import act

SCRIPTS = {
    "quick": [act("final_answer(6 * 7)")],
    "slow": [act("x = 41\nprint(x)"), act("print(gate())"), act("final_answer(x + 1)")],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gate-file", required=True)
    parser.add_argument("--on-restart", default="interrupt")
    args = parser.parse_args()

    import uvicorn

    from tinyact.serve import RunService, ServerConfig, create_app
    from tinyact.models.engines.scripted import ScriptedEngine

    def gate() -> str:
        """Wait until the gate file exists."""
        while not os.path.exists(args.gate_file):
            time.sleep(0.05)
        return "open"

    config = ServerConfig(db=args.db, on_restart=args.on_restart, exec_timeout=300)
    service = RunService(ScriptedEngine(SCRIPTS), tools=[gate], config=config)
    uvicorn.run(create_app(service), host="127.0.0.1", port=args.port, log_level="warning",
                timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
