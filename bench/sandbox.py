"""Sandbox latency: execute round trip, fork + execute for k candidates, and the
alternatives (smolagents' in-process LocalPythonExecutor, a fresh python3 -c).

Run: python -m tinyact.bench.sandbox [--n 500] [--backends process docker]
Prints a table of p50 / p99 milliseconds.

Rows:
- "execute round trip": `x = x + 1` in a live session, back to back (the next
  call right after the reply: the worker's tail work, the next standby's fork,
  is then on the critical path) and paced (10 ms between calls, far less than
  the model's generation between two steps of an agent).
- "fork_many(k) + execute each + close": k forks of a session holding a small
  state (one request), each runs one snippet in its own thread, all closed:
  wall time of the whole batch.
- smolagents LocalPythonExecutor: the same snippet in-process (no isolation).
- python3 -c: a fresh interpreter per snippet (isolation by process, no state).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

SNIPPET = "x = x + 1"
PACE_S = 0.010
STATE = "x = 0\ndata = list(range(1000))\nnotes = {'k': 'v' * 100}"


def _pcts(samples: list[float]) -> tuple[float, float, float]:
    s = sorted(samples)
    p = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1e3  # noqa: E731
    return p(0.5), p(0.99), statistics.mean(s) * 1e3


def _time(fn: Callable[[], object], n: int, pace_s: float = 0.0) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
        if pace_s:
            time.sleep(pace_s)
    return out


def bench_backend(backend: str, n: int) -> list[tuple[str, list[float]]]:
    from tinyact.sandbox import open_session

    rows = []
    with open_session(backend=backend) as s:
        s.execute(STATE)
        for _ in range(20):  # warm up
            s.execute(SNIPPET)
        rows.append((f"{backend} ({s.isolation}): execute round trip, back to back", _time(lambda: s.execute(SNIPPET), n)))
        rows.append(
            (f"{backend} ({s.isolation}): execute round trip, paced", _time(lambda: s.execute(SNIPPET), n, PACE_S))
        )

        def candidates(k: int) -> None:
            forks = s.fork_many(k)
            threads = [threading.Thread(target=f.execute, args=(SNIPPET,)) for f in forks]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for f in forks:
                f.close()

        for k in (1, 8):
            rows.append((f"{backend} ({s.isolation}): fork_many(k) + execute each + close, k={k}", _time(lambda k=k: candidates(k), max(20, n // 10), 0.002)))
    return rows


def bench_smolagents(n: int) -> tuple[str, list[float] | str]:
    name = "smolagents LocalPythonExecutor (in-process, no isolation)"
    try:
        from smolagents.local_python_executor import LocalPythonExecutor
    except ImportError:
        return name, "not installed (pip install smolagents)"
    ex = LocalPythonExecutor(additional_authorized_imports=[])
    ex.send_tools({})
    ex(STATE)
    return name, _time(lambda: ex(SNIPPET), n)


def bench_fresh_python(n: int) -> tuple[str, list[float]]:
    code = STATE + "\n" + SNIPPET
    argv = [sys.executable, "-S", "-c", code]
    return "fresh python3 -S -c per snippet (no state)", _time(lambda: subprocess.run(argv, check=True), max(10, n // 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="samples per round-trip row")
    parser.add_argument("--backends", nargs="+", default=["process"])
    args = parser.parse_args()

    rows: list[tuple[str, list[float] | str]] = []
    for backend in args.backends:
        try:
            rows += bench_backend(backend, args.n)
        except Exception as e:  # noqa: BLE001 - report and go on
            rows.append((f"{backend}", f"unavailable: {e}"))
    rows.append(bench_smolagents(args.n))
    rows.append(bench_fresh_python(args.n))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    table = Table(title=f"sandbox latency (ms), snippet {SNIPPET!r}; {os.cpu_count()} CPUs, load average {load}")
    for col in ("what", "n", "p50", "p99", "mean"):
        table.add_column(col, justify="left" if col == "what" else "right")
    for name, samples in rows:
        if isinstance(samples, str):
            table.add_row(name, "-", samples, "", "")
        else:
            p50, p99, mean = _pcts(samples)
            table.add_row(name, str(len(samples)), f"{p50:.3f}", f"{p99:.3f}", f"{mean:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
