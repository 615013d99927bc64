"""Agent API load test: throughput and latency of whole runs over HTTP.

Run: python -m tinyact.bench.api --engine replay [--clients 1 4 16] [--requests 48]
     python -m tinyact.bench.api --engine real --clients 1 4 --requests 4

A local uvicorn server (127.0.0.1) runs each request as a full agent run: the
controller, a fresh sandbox per run, the engine behind the BatchingEngine, and
the HTTP round trip. ``replay`` scripts the model (two steps: compute, then
answer), so it measures everything but the model; ``real`` uses the default
catalog model on the transformers engine. Prints a table per concurrency level:
requests, errors, throughput, p50/p99 latency, conversations per engine call
(the BatchingEngine merging concurrent proposals), and sandboxes left behind
once the level is over (processes under the server plus sessions it holds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPLAY_TASK = "Sum the integers below 1000."


def descendants(pid: int) -> list[int]:
    """Live descendant processes of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def load(url: str, clients: int, requests: int, body: dict, timeout: float) -> dict:
    """``clients`` threads share ``requests`` runs; each waits for its run's answer."""
    latencies: list[float] = []
    errors: list[str] = []
    steps: list[int] = []
    counter = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=timeout) as c:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                started = time.perf_counter()
                try:
                    r = c.post("/v1/runs", json=body)
                    elapsed = time.perf_counter() - started
                    data = r.json()
                    ok = r.status_code == 200 and data.get("status") == "finished" and data.get("end_reason") != "error"
                except httpx.HTTPError as e:
                    elapsed, ok, data = time.perf_counter() - started, False, {"error": repr(e)}
                with lock:
                    if ok:
                        latencies.append(elapsed)
                        steps.append(len(data["steps"]))
                    else:
                        errors.append(str(data.get("error") or data)[:200])

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "steps": steps, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["replay", "real"], default="replay")
    parser.add_argument("--model", default=None, help="catalog model for --engine real (default: the default model)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=None, help="runs per level (default: 48 replay, 4 real)")
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128, help="new tokens per model call (real engine)")
    args = parser.parse_args()
    requests = args.requests or (48 if args.engine == "replay" else 4)

    from tinyact.serve import RunService, ServerConfig
    from tinyact.models.engines.scripted import ScriptedEngine, act

    console = Console(width=max(Console().width, 110))
    if args.engine == "replay":
        script = [act("x = sum(range(1000))\nprint(x)", "add them up"), act("final_answer(x)", "answer")]
        engine = ScriptedEngine({REPLAY_TASK: script})
        body, name, timeout = {"task": REPLAY_TASK}, "replay (scripted, 2 steps)", 120.0
        options: dict = {}
    else:
        from tinyact.models.catalog import default_model
        from tinyact.models.engines import load_engine

        name = args.model or default_model()
        console.log(f"loading {name} (transformers)")
        engine = load_engine(name, engine="transformers")
        body, timeout = {"task": "What is 17 * 23? Use code to compute it."}, 1800.0
        options = {"max_tokens": args.max_tokens}
    body["max_steps"] = args.max_steps
    most = max(args.clients)
    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(db=str(Path(tmp) / "runs.sqlite"), max_active_per_key=most,
                              max_queued_per_key=requests, run_timeout=timeout, agent_options=options)
        service = RunService(engine, config=config)
        with serve(service) as url:
            baseline = len(descendants(os.getpid()))
            load(url, 1, 1, body, timeout)  # warm-up: imports, first sandbox, first graph
            table = Table(title=f"tinyact API load test: {name}, {os.cpu_count()} CPUs")
            for col in ("clients", "requests", "errors", "req/s", "p50 s", "p99 s", "steps/run",
                        "conv/call", "sandboxes left"):
                table.add_column(col, justify="right")
            for clients in args.clients:
                calls0, convs0 = service.engine.inner_calls, service.engine.batched_conversations
                res = load(url, clients, requests, body, timeout)
                time.sleep(0.5)  # let closing sandboxes exit
                left = len(descendants(os.getpid())) - baseline
                calls = service.engine.inner_calls - calls0
                convs = service.engine.batched_conversations - convs0
                lat = res["latencies"]
                table.add_row(
                    str(clients), str(requests), str(len(res["errors"])), f"{len(lat) / res['wall']:.3g}",
                    f"{percentile(lat, 0.5):.2f}", f"{percentile(lat, 0.99):.2f}",
                    f"{statistics.mean(res['steps']):.1f}" if res["steps"] else "-",
                    f"{convs / calls:.2f}" if calls else "-",
                    str(max(left, 0) + service.active_sandboxes),
                )
                console.log(f"{clients} client(s): {len(lat)} ok, {len(res['errors'])} errors in {res['wall']:.1f}s")
                for e in res["errors"][:3]:
                    console.log(f"  error: {e}")
    console.print(table)


def serve(service):
    """The service's app on uvicorn, 127.0.0.1, a free port, in a thread."""
    import contextlib
    import socket

    import uvicorn

    from tinyact.serve import create_app

    @contextlib.contextmanager
    def running():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning", backlog=256))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(30)
            sock.close()

    return running()


if __name__ == "__main__":
    main()
