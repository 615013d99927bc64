"""Engines side by side: tokens/s (n=1, n=8 in one call), agent step latency (cold/warm prompt), k=8 vs k=1, RSS.

Run: python -m tinyact.bench.engine [--model qwen2.5-coder-0.5b] [--engines transformers llamacpp llamacpp@1]
                                    [--runs 2] [--max-tokens 64]
     python -m tinyact.bench.engine --raw --engines llamacpp@1 llamacpp@2 [--runs 3]

Each engine runs in a fresh process (spawned one after the other), so that its
RSS is its own; ``llamacpp@N`` is llama.cpp with N threads. An "agent step" is
the agent's full system prompt plus a task, greedy; "cold" means nothing of the
prompt is cached, "warm" means another task with the same system prompt was
just answered (what the agent's next task looks like; the next *step* of the
same task shares even more). The k=8 step samples 8 candidates (T=0.4,
top_p 0.8, the agent's self-consistency setting) in one call.

``--raw`` measures each ``llamacpp@N`` against raw llama.cpp instead
(bench/llamacpp_raw.py: llama-cpp-python's own ``Llama`` for k=1, issue 16's
low-level k-sequence loop for k=8), interleaved in one process on the same
prompt, GGUF and threads, with the agent's stop strings; it reports our
engine's time over the reference's (median of per-repetition ratios) and each
side's k=8/k=1 cost. ``llamacpp@N,key=value`` passes engine options
(``n_threads_batch``, ``n_ubatch``, ``flash_attn``=auto|on|off).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from tinyact.schema import Message, SamplingParams

SHORT = [Message(role="user", content="Write a Python function that checks whether a number is prime.")]
TASKS = ["How many times does the letter 'r' appear in 'strawberry raspberry cranberry'?",
         "What is the sum of the squares of the integers from 1 to 50 inclusive?",
         "Given the list [17, -4, 99, 23, -61, 8], what is the largest value minus the smallest value?",
         "What is 48271 * 90317?"]  # fmt: skip


def _timed(engine: Any, conv: list[Message], n: int, sampling: SamplingParams) -> tuple[float, int]:
    started = time.perf_counter()
    out = engine.generate([conv], n=n, sampling=sampling)[0]
    return time.perf_counter() - started, sum(c.completion_tokens for c in out)


def _clear(engine: Any) -> None:
    if hasattr(engine, "clear_cache"):
        engine.clear_cache()


def measure(spec: str, model: str, runs: int, max_tokens: int) -> dict[str, Any]:
    """Everything for one engine, in this (fresh) process."""
    import resource

    from tinyact.agents.prompts import render_system_prompt
    from tinyact.models.engines import load_engine

    name, _, threads = spec.partition("@")
    kwargs: dict[str, Any] = {"n_threads": int(threads)} if threads else {}
    started = time.perf_counter()
    engine = load_engine(model, engine=name, **kwargs)
    result: dict[str, Any] = {"engine": spec, "load_s": time.perf_counter() - started}
    system, _ = render_system_prompt("full", [])
    step = lambda i: [Message(role="system", content=system), Message(role="user", content=TASKS[i % len(TASKS)])]  # noqa: E731
    sample8 = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=max_tokens)
    greedy = SamplingParams(temperature=0, max_tokens=max_tokens)
    k8 = SamplingParams(temperature=0.4, top_p=0.8, max_tokens=max_tokens)
    engine.generate([SHORT], sampling=SamplingParams(max_tokens=4))  # warm-up
    cached = hasattr(engine, "clear_cache")
    keys = ["tok/s n=1", "tok/s n=8", "step cold", "step warm", "k=8 step cold", "k=8 step warm"]
    samples: dict[str, list[float]] = {k: [] for k in keys}
    tokens: dict[str, list[int]] = {k: [] for k in keys}
    for run in range(runs):
        for key, n in (("tok/s n=1", 1), ("tok/s n=8", 8)):
            _clear(engine)
            s, t = _timed(engine, SHORT, n, sample8.model_copy(update={"seed": run}))
            samples[key].append(t / s)
            tokens[key].append(t)
        for key, n, sampling in (("step", 1, greedy), ("k=8 step", 8, k8.model_copy(update={"seed": run}))):
            _clear(engine)
            s, t = _timed(engine, step(2 * run), n, sampling)
            samples[f"{key} cold"].append(s)
            tokens[f"{key} cold"].append(t)
            if cached:  # the next task, same system prompt
                s, t = _timed(engine, step(2 * run + 1), n, sampling)
                samples[f"{key} warm"].append(s)
                tokens[f"{key} warm"].append(t)
    for k in keys:
        if samples[k]:
            result[k] = statistics.median(samples[k])
            result[f"{k} range"] = (min(samples[k]), max(samples[k]))
            result[f"{k} tokens"] = statistics.median(tokens[k])
    if hasattr(engine, "memory"):
        result["kv_cache_mb"] = engine.memory()["kv_cache_bytes"] / 1e6
    result["prompt_tokens"] = engine.generate([step(0)], sampling=SamplingParams(max_tokens=1))[0][0].prompt_tokens
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _fmt(r: dict[str, Any], key: str, unit: str) -> str:
    if key not in r:
        return "-"
    lo, hi = r[f"{key} range"]
    return f"{r[key]:.1f}{unit} [{lo:.1f}-{hi:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--engines", nargs="+", default=["transformers", "llamacpp"],
                        help="transformers | vllm | llamacpp | llamacpp@THREADS")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--raw", action="store_true", help="each llamacpp@N against raw llama.cpp, interleaved")
    parser.add_argument("--k-cost", action="store_true",
                        help="with --raw: only our engine's cold k=1 and k=8 steps (to try engine options)")
    parser.add_argument("--no-stop", action="store_true", help="with --raw: no stop strings (every sample runs to --max-tokens)")
    args = parser.parse_args()
    if args.raw:
        return raw_main(args)

    console = Console()
    results = []
    ctx = multiprocessing.get_context("spawn")
    for spec in args.engines:
        with ctx.Pool(1) as pool:
            try:
                results.append(pool.apply(measure, (spec, args.model, args.runs, args.max_tokens)))
            except ImportError as e:
                console.print(f"[yellow]skipping {spec}: {e}[/]")
                continue
        console.log(results[-1])
    table = Table(title=f"{args.model}: median [min-max] of {args.runs} runs, {args.max_tokens} new tokens")
    table.add_column("measure")
    for r in results:
        table.add_column(r["engine"], justify="right")
    rows = [("load (s)", lambda r: f"{r['load_s']:.1f}"),
            ("tokens/s, n=1", lambda r: _fmt(r, "tok/s n=1", "")),
            ("tokens/s, n=8 in one call", lambda r: _fmt(r, "tok/s n=8", "")),
            ("agent step, cold prompt (s)", lambda r: _fmt(r, "step cold", "")),
            ("agent step, warm prompt (s)", lambda r: _fmt(r, "step warm", "")),
            ("k=8 step, cold (s)", lambda r: _fmt(r, "k=8 step cold", "")),
            ("k=8 step, warm (s)", lambda r: _fmt(r, "k=8 step warm", "")),
            ("k=8 / k=1 step, cold", lambda r: f"{r['k=8 step cold'] / r['step cold']:.2f}x"),
            ("k=8 / k=1 step, warm", lambda r: f"{r['k=8 step warm'] / r['step warm']:.2f}x" if "step warm" in r else "-"),
            ("step prompt / new tokens", lambda r: f"{r['prompt_tokens']} / {r['step cold tokens']:.0f}"),
            ("peak RSS (MB)", lambda r: f"{r['peak_rss_mb']:.0f}")]  # fmt: skip
    for label, cell in rows:
        table.add_row(label, *[cell(r) for r in results])
    console.print(table)


def raw_main(args: argparse.Namespace) -> None:
    from tinyact.agents.config import STOP
    from tinyact.bench.llamacpp_raw import measure_vs_raw

    console = Console()
    ctx = multiprocessing.get_context("spawn")
    results = []
    for spec in args.engines:
        with ctx.Pool(1) as pool:
            results.append(pool.apply(measure_vs_raw, (spec, args.model, args.runs, args.max_tokens,
                                                       [] if args.no_stop else list(STOP),
                                                       not args.k_cost)))
        console.log(results[-1])
    table = Table(title=f"{args.model}: LlamaCppEngine vs raw llama.cpp, median of {args.runs} interleaved runs, "
                        f"{args.max_tokens} max new tokens, " + ("no stop strings" if args.no_stop else
                                                                 "the agent's stop strings"))  # fmt: skip
    table.add_column("measure")
    for r in results:
        table.add_column(f"{r['engine']} (load {r['load_avg']:.1f})", justify="right")

    def cell(r: dict[str, Any], key: str) -> str:
        ours, raw = (statistics.median(r["times"][w][key]) for w in ("ours", "raw"))
        toks = "/".join(f"{statistics.median(r['tokens'][w][key]):.0f}" for w in ("ours", "raw"))
        return (f"{ours:.2f} s / {raw:.2f} s = {r[f'{key} ratio']:.2f}x; "
                f"CPU {r[f'{key} cpu ratio']:.2f}x ({toks} tok)")

    if args.k_cost:
        for label, key in (("step, cold prompt, k=1 (s)", "step cold"), ("step, cold prompt, k=8 (s)", "k=8 step cold")):
            table.add_row(label, *[f"{statistics.median(r['times']['ours'][key]):.2f}" for r in results])
        table.add_row("k=8 / k=1 cold (wall; CPU)", *[f"{r['ours k8/k1']:.2f}x; {r['ours k8/k1 cpu']:.2f}x" for r in results])
        return console.print(table)
    for label, key in (("step, cold prompt, k=1", "step cold"), ("step, warm prompt, k=1", "step warm"),
                       ("step, cold prompt, k=8", "k=8 step cold")):  # fmt: skip
        table.add_row(f"{label}: ours / raw", *[cell(r, key) for r in results])
    for who in ("ours", "raw"):
        table.add_row(f"k=8 / k=1 cold: {who} (wall; CPU)", *[f"{r[f'{who} k8/k1']:.2f}x; {r[f'{who} k8/k1 cpu']:.2f}x"
                                                              for r in results])  # fmt: skip
    table.add_row("prompt tokens", *[str(r["prompt_tokens"]) for r in results])
    console.print(table)


if __name__ == "__main__":
    main()
