"""Agent API load test: throughput and latency of whole runs over HTTP.

Run: python -m tinyact.bench.api --engine replay [--clients 1 4 16] [--requests 48] [--sandbox-pool 0]
     python -m tinyact.bench.api --clients 1 8 --sandbox-reuse off on --rounds 3
     python -m tinyact.bench.api --engine real --clients 1 4 --requests 4
     python -m tinyact.bench.api --replicas [--pg-url postgresql://...] [--clients 8] [--requests 96]

A local uvicorn server (127.0.0.1) runs each request as a full agent run: the
controller, a fresh sandbox per run, the engine behind the BatchingEngine, and
the HTTP round trip (``--sandbox-reuse on``: the opt-in mode that reuses a
sandbox between runs of a key after a reset; ``off on`` measures both, one
server each, levels alternating). ``replay`` scripts the model (two steps: compute, then
answer), so it measures everything but the model; ``real`` uses the default
catalog model on the transformers engine. Prints a table per concurrency level:
requests, errors, throughput, p50/p99 latency, conversations per engine call
(the BatchingEngine merging concurrent proposals), runs served by a ready or
kept sandbox, CPU per run of the server (this process; the clients run in
a process of their own) and of the sandboxes, and sandboxes left behind once the level is over (neither ready
nor kept for reuse).

``--replicas`` compares deployments under the same scripted load, each
replica a ``tinyact serve``-like server process of its own: 1 replica on
SQLite, 1 and 2 replicas on one PostgreSQL database (``--pg-url``, or a
temporary server started from a checkout's tests/serve/postgres.py). Clients
are spread over the replicas round robin.
"""

from __future__ import annotations

import argparse
import contextlib
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


def load(url: str | list[str], clients: int, requests: int, body: dict, timeout: float) -> dict:
    """``clients`` threads share ``requests`` runs; each waits for its run's answer.
    With several URLs (replicas), run k goes to ``url[k % len(url)]``."""
    urls = [url] if isinstance(url, str) else url
    latencies: list[float] = []
    errors: list[str] = []
    steps: list[int] = []
    counter = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        sessions = [httpx.Client(base_url=u, timeout=timeout) for u in urls]
        try:
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                c = sessions[k % len(sessions)]
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
        finally:
            for c in sessions:
                c.close()

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
    parser.add_argument("--sandbox-pool", type=int, default=4, help="sandboxes started ahead (0: one per run)")
    parser.add_argument("--sandbox-reuse", nargs="+", choices=["off", "on"], default=["off"],
                        help="reuse a sandbox between runs of a key after a reset (opt-in mode); 'off on': both")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every level; the table shows medians")
    parser.add_argument("--replicas", action="store_true", help="compare SQLite x1, PostgreSQL x1 and x2")
    parser.add_argument("--pg-url", default=None, help="PostgreSQL for --replicas (default: a temporary server)")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)  # a replica process: its port
    parser.add_argument("--db", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--replica-id", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve_replica(args)
        return
    if args.replicas:
        compare_replicas(args)
        return
    requests = args.requests or (48 if args.engine == "replay" else 4)

    from tinyact.serve import RunService, ServerConfig
    from tinyact.models.engines.scripted import ScriptedEngine, act

    console = Console(width=max(Console().width, 160))
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
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        clients_pool = stack.enter_context(client_process())
        services, urls = {}, {}
        for mode in dict.fromkeys(args.sandbox_reuse):  # one server per mode, all up at once: levels alternate
            config = ServerConfig(db=str(Path(tmp) / f"runs-{mode}.sqlite"), max_active_per_key=most,
                                  max_queued_per_key=requests, run_timeout=timeout, agent_options=options,
                                  sandbox_pool=args.sandbox_pool, sandbox_reuse=mode == "on")
            services[mode] = RunService(engine, config=config)
            _SERVICES.append(services[mode])
            urls[mode] = stack.enter_context(serve(services[mode]))
            load(urls[mode], 1, 2, body, timeout)  # warm-up: imports, first sandbox, first graph
        results: dict[tuple, list[dict]] = {}
        for _ in range(args.rounds):
            for clients in args.clients:
                for mode, service in services.items():
                    settle(service)
                    res = level(service, urls[mode], clients, requests, body, timeout, clients_pool)
                    results.setdefault((mode, clients), []).append(res)
                    console.log(f"sandbox reuse {mode}, {clients} client(s): {res['ok']} ok, "
                                f"{len(res['errors'])} errors, {res['rate']:.1f} req/s")
                    for e in res["errors"][:3]:
                        console.log(f"  error: {e}")
        load_avg = os.getloadavg()
    table = Table(title=f"tinyact API load test: {name}, {os.cpu_count()} CPUs, sandbox pool {args.sandbox_pool}, "
                        f"{args.rounds} round(s) (medians), load average {load_avg[0]:.1f} at the end")
    for col in ("sandbox", "clients", "requests", "errors", "req/s", "p50 s", "p99 s", "steps/run", "conv/call",
                "pool hits", "server CPU ms/run", "sandbox CPU ms/run", "sandboxes left"):
        table.add_column(col, justify="right")
    for (mode, clients), rs in results.items():
        lat = [x for r in rs for x in r["latencies"]]
        steps = [x for r in rs for x in r["steps"]]
        med = lambda key: statistics.median(r[key] for r in rs)  # noqa: E731
        table.add_row(
            "reused" if mode == "on" else "fresh", str(clients), str(requests), str(sum(len(r["errors"]) for r in rs)),
            f"{med('rate'):.3g}", f"{percentile(lat, 0.5):.3f}", f"{percentile(lat, 0.99):.3f}",
            f"{statistics.mean(steps):.1f}" if steps else "-", f"{med('conv'):.2f}" if rs[0]["conv"] else "-",
            f"{med('hits'):.0f}/{requests}", f"{med('host_cpu'):.0f}", f"{med('sandbox_cpu'):.0f}",
            str(max(r["left"] for r in rs)),
        )
    console.print(table)


def client_process():
    """A process of its own for the clients (spawned: the server's threads are not forked), so that
    they share the CPUs with the server, as clients on the same host would, but not its GIL."""
    import multiprocessing

    @contextlib.contextmanager
    def running():
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            pool.apply(os.getpid)
            pool.skip = set(sandbox_roots(os.getpid()))  # its worker and resource tracker: no sandbox yet
            yield pool

    return running()


def level(service, url: str, clients: int, requests: int, body: dict, timeout: float, runner) -> dict:
    """One load level on one server: rates, latencies, CPU per run (this process: the server;
    the sandboxes: every process below it but the clients'), and the sandboxes left after it."""
    engine, pool = service.engine, service.pool
    calls0, convs0 = engine.inner_calls, engine.batched_conversations
    hits0 = (pool.hits + pool.reused) if pool is not None else 0
    skip = runner.skip
    cpu0, tree0 = time.process_time(), tree_cpu(os.getpid(), skip)
    res = runner.apply(load, (url, clients, requests, body, timeout))
    cpu, tree = time.process_time() - cpu0, tree_cpu(os.getpid(), skip) - tree0
    time.sleep(0.5)  # let closing sandboxes exit
    settle(service)
    ok = max(len(res["latencies"]), 1)
    calls = engine.inner_calls - calls0
    kept = (len(pool) + pool.kept) if pool is not None else 0
    return {**res, "ok": len(res["latencies"]), "rate": len(res["latencies"]) / res["wall"],
            "conv": (engine.batched_conversations - convs0) / calls if calls else 0.0,
            "hits": ((pool.hits + pool.reused) - hits0) if pool is not None else 0,
            "host_cpu": 1000 * cpu / ok, "sandbox_cpu": 1000 * tree / ok,
            "left": max(0, len(sandbox_roots(os.getpid())) - len(skip) - kept - other_servers_sandboxes(service))}


def tree_cpu(pid: int, skip: set[int]) -> float:
    """CPU seconds of every process below ``pid`` (each with its reaped children) but those in
    ``skip`` (and theirs), plus what ``pid`` reaped: grows by what the sandboxes burn."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    skipped = {p for s in skip for p in (s, *descendants(s))}
    for child in set(descendants(pid)) - skipped:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / tick
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + ru.ru_utime + ru.ru_stime


def sandbox_roots(pid: int) -> list[int]:
    """The direct children of ``pid`` that are alive: one launcher per sandbox."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
    return out


_SERVICES: list = []


def other_servers_sandboxes(service) -> int:
    """Sandboxes that the other servers of this process hold ready or kept (not leftovers)."""
    return sum(len(s.pool) + s.pool.kept for s in _SERVICES if s is not service and s.pool is not None)


def settle(service, timeout: float = 30.0) -> None:
    """Wait until the sandbox pool is full again (its ready sandboxes are not leftovers)."""
    deadline = time.monotonic() + timeout
    while service.pool is not None and len(service.pool) < service.pool.size and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)


def scripted_engine():
    from tinyact.models.engines.scripted import ScriptedEngine, act

    script = [act("x = sum(range(1000))\nprint(x)", "add them up"), act("final_answer(x)", "answer")]
    return ScriptedEngine({REPLAY_TASK: script})


def serve_replica(args) -> None:
    """One replica: the scripted agent API on 127.0.0.1:PORT over ``--db``."""
    import uvicorn

    from tinyact.serve import RunService, ServerConfig, create_app

    config = ServerConfig(db=args.db, replica_id=args.replica_id, max_active_per_key=max(args.clients),
                          max_queued_per_key=10_000, sandbox_pool=args.sandbox_pool,
                          sandbox_reuse=args.sandbox_reuse[-1] == "on")
    uvicorn.run(create_app(RunService(scripted_engine(), config=config)), host="127.0.0.1", port=args.serve,
                log_level="warning", backlog=256)


def replicas(db: str, n: int, args) -> list:
    """``n`` replica processes on ``db``; their URLs once ready."""
    import socket
    import subprocess
    import sys

    procs, urls = [], []
    for i in range(n):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "tinyact.bench.api", "--serve", str(port), "--db", db, "--replica-id",
               f"bench-{i}", "--sandbox-pool", str(args.sandbox_pool), "--clients", *map(str, args.clients),
               "--sandbox-reuse", args.sandbox_reuse[-1]]
        procs.append(subprocess.Popen(cmd))
        urls.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 120
    for url, proc in zip(urls, procs):
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"replica at {url} did not start")
            time.sleep(0.2)
    return [procs, urls]


def compare_replicas(args) -> None:
    """One table: the same scripted load on SQLite x1, PostgreSQL x1 and PostgreSQL x2."""
    import contextlib

    console = Console(width=max(Console().width, 160))
    requests = args.requests or 96
    body = {"task": REPLAY_TASK, "max_steps": args.max_steps}
    table = Table(title=f"tinyact API replicas: scripted 2-step runs, {os.cpu_count()} CPUs, "
                        f"sandbox pool {args.sandbox_pool}")
    for col in ("store", "replicas", "clients", "requests", "errors", "req/s", "p50 s", "p99 s"):
        table.add_column(col, justify="right")
    with contextlib.ExitStack() as stack:
        pg_url = args.pg_url
        if pg_url is None:
            try:
                from tests.serve.postgres import PostgresServer  # a checkout: start a temporary server
            except ImportError:
                raise SystemExit("--replicas needs --pg-url (or run from a checkout that has tests/)") from None
            pg = stack.enter_context(PostgresServer())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        setups = [("sqlite", 1, str(Path(tmp) / "runs.sqlite")), ("postgresql", 1, pg_url or pg.database()),
                  ("postgresql", 2, pg_url or pg.database())]
        for store, n, db in setups:
            procs, urls = replicas(db, n, args)
            try:
                for url in urls:
                    load([url], 1, 2, body, 120.0)  # warm-up
                for clients in args.clients:
                    res = load(urls, clients, requests, body, 120.0)
                    lat = res["latencies"]
                    table.add_row(store, str(n), str(clients), str(requests), str(len(res["errors"])),
                                  f"{len(lat) / res['wall']:.3g}", f"{percentile(lat, 0.5):.3f}",
                                  f"{percentile(lat, 0.99):.3f}")
                    console.log(f"{store} x{n}, {clients} client(s): {len(lat)} ok in {res['wall']:.1f}s")
                    for e in res["errors"][:3]:
                        console.log(f"  error: {e}")
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(30)
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
